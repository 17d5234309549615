"""VGG16 as Keras 3 builds it (keras/src/applications/vgg16.py): 13 ReLU convolutions in five
blocks, each closed by a 2x2 max pool, and with include_top Flatten, fc1, fc2 and the
predictions. All layers named by Keras except the pooling of pooling="avg"/"max"
(`global_average_pooling2d` / `global_max_pooling2d`, Keras's auto-names: catdog's name
counters count as Keras's do, so a fresh process names them alike).

Preprocessing is outside the model: `preprocess_input` is "caffe" (BGR, mean subtracted)."""
from __future__ import annotations

from catdog import layers
from catdog.applications import imagenet_utils
from catdog.applications._build import finish, image_input

# (block, number of convolutions, filters)
_BLOCKS = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax", name="vgg16"):
    """Keras's VGG16. weights: None, "imagenet" (the official file, checked against Keras's
    md5) or a weights file. input_shape defaults to (224, 224, 3) (required with the ImageNet
    top); at least 32x32."""
    imagenet_utils.check_weights_arg(weights, include_top, classes)
    imagenet_utils.check_pooling(pooling)
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    require_flatten=include_top, weights=weights)
    img_input = image_input(input_shape, input_tensor)
    x = img_input
    for block, n, filters in _BLOCKS:
        for i in range(1, n + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same",
                              name=f"block{block}_conv{i}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)
    file = ("vgg16_weights_tf_dim_ordering_tf_kernels.h5" if include_top
            else "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    return finish(img_input, x, name, weights, file)


def preprocess_input(x, data_format=None):
    """Keras's vgg16.preprocess_input ("caffe"): RGB -> BGR, minus the ImageNet mean, no
    scaling."""
    if data_format not in (None, "channels_last"):
        raise ValueError("catdog runs channels_last only")
    return imagenet_utils.preprocess_caffe(x)


def decode_predictions(preds, top=5, **kwargs):
    return imagenet_utils.decode_predictions(preds, top=top, **kwargs)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
