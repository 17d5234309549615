"""ResNet50 as Keras 3 builds it (keras/src/applications/resnet.py): the same layers, names,
order (Keras's, see catdog.models.keras_layer_order), parameter counts and arguments, so the
official `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5` loads by name and
`base.layers[k]` is Keras's layer k. Every layer is named by Keras: no auto-names.

Preprocessing is outside the model, as in Keras: `preprocess_input` ("caffe": RGB -> BGR and
the ImageNet mean subtracted, no scaling) on pixels in [0, 255]."""
from __future__ import annotations

from catdog import layers
from catdog.applications import imagenet_utils
from catdog.applications._build import finish, image_input

BN_EPS = 1.001e-5  # Keras's BatchNormalization(epsilon=1.001e-5), momentum 0.99 (default)


def residual_block_v1(x, filters, kernel_size=3, stride=1, conv_shortcut=True, name=None):
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def stack_residual_blocks_v1(x, filters, blocks, stride1=2, name=None):
    x = residual_block_v1(x, filters, stride=stride1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = residual_block_v1(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def ResNet(stack_fn, include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
           pooling=None, classes=1000, classifier_activation="softmax", name="resnet",
           weights_name=None):
    """Keras's ResNet (v1, use_bias=True, no pre-activation)."""
    imagenet_utils.check_weights_arg(weights, include_top, classes)
    imagenet_utils.check_pooling(pooling)
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    require_flatten=include_top, weights=weights)
    img_input = image_input(input_shape, input_tensor)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=True, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPS, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = stack_fn(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    top = "" if include_top else "_notop"
    return finish(img_input, x, name, weights,
                  f"{weights_name}_weights_tf_dim_ordering_tf_kernels{top}.h5")


def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax", name="resnet50"):
    """Keras's ResNet50. weights: None (glorot-uniform init), "imagenet" (the official file,
    from $CATDOG_WEIGHTS_DIR, the cache, or downloaded and checked against Keras's md5) or a
    weights file (legacy .h5 or Keras 3 .weights.h5). input_shape defaults to (224, 224, 3);
    at least 32x32."""
    def stack_fn(x):
        x = stack_residual_blocks_v1(x, 64, 3, stride1=1, name="conv2")
        x = stack_residual_blocks_v1(x, 128, 4, name="conv3")
        x = stack_residual_blocks_v1(x, 256, 6, name="conv4")
        return stack_residual_blocks_v1(x, 512, 3, name="conv5")

    return ResNet(stack_fn, include_top, weights, input_tensor, input_shape, pooling, classes,
                  classifier_activation, name=name, weights_name="resnet50")


def preprocess_input(x, data_format=None):
    """Keras's resnet.preprocess_input ("caffe"): RGB -> BGR, minus the ImageNet mean
    (103.939, 116.779, 123.68), no scaling; pixels in [0, 255] in, float32 out."""
    if data_format not in (None, "channels_last"):
        raise ValueError("catdog runs channels_last only")
    return imagenet_utils.preprocess_caffe(x)


def decode_predictions(preds, top=5, **kwargs):
    return imagenet_utils.decode_predictions(preds, top=top, **kwargs)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
