"""EfficientNetB0 as Keras 3 builds it (keras/src/applications/efficientnet.py), layer for
layer, with its preprocessing inside the model: Rescaling(1/255), Normalization (mean and
variance are weights, set by the ImageNet file; identity until then), and, only with
weights="imagenet", Keras's extra Rescaling by 1/sqrt(std) per channel (Keras's fix for the
original's (x - mean) / var, tensorflow/tensorflow#49930). So the layer list differs between
weights="imagenet" and weights=None or a file, as in Keras; the model takes pixels in
[0, 255] and `preprocess_input` is the identity.

Auto-named layers (`rescaling`, `normalization`, `rescaling_1`) take catdog's name counters,
which count as Keras's. With weights=None the kernels start glorot-uniform (catdog's
initializer), not Keras's VarianceScaling(2.0, fan_out): random starts differ in
distribution, ImageNet or file weights do not.

input_shape=None gives (224, 224, 3) with the top and Keras's (None, None, 3) without it: any
image size, a graph per size (catdog.models.Model._use_size)."""
from __future__ import annotations

import copy
import math

import numpy as np

from catdog import layers
from catdog.applications import imagenet_utils
from catdog.applications._build import finish, image_input
from catdog.layers.preprocessing import ChannelRescaling

IMAGENET_STDDEV_RGB = [0.229, 0.224, 0.225]

DEFAULT_BLOCKS_ARGS = [
    dict(kernel_size=3, repeats=1, filters_in=32, filters_out=16, expand_ratio=1, id_skip=True,
         strides=1, se_ratio=0.25),
    dict(kernel_size=3, repeats=2, filters_in=16, filters_out=24, expand_ratio=6, id_skip=True,
         strides=2, se_ratio=0.25),
    dict(kernel_size=5, repeats=2, filters_in=24, filters_out=40, expand_ratio=6, id_skip=True,
         strides=2, se_ratio=0.25),
    dict(kernel_size=3, repeats=3, filters_in=40, filters_out=80, expand_ratio=6, id_skip=True,
         strides=2, se_ratio=0.25),
    dict(kernel_size=5, repeats=3, filters_in=80, filters_out=112, expand_ratio=6, id_skip=True,
         strides=1, se_ratio=0.25),
    dict(kernel_size=5, repeats=4, filters_in=112, filters_out=192, expand_ratio=6, id_skip=True,
         strides=2, se_ratio=0.25),
    dict(kernel_size=3, repeats=1, filters_in=192, filters_out=320, expand_ratio=6, id_skip=True,
         strides=1, se_ratio=0.25),
]


# Keras's Rescaling with one scale per channel (EfficientNet's "imagenet" stem): the layers'
# own class, which catdog.layers.Rescaling([...]) makes too; kept under this name
Rescaling = ChannelRescaling


def _register_config():
    """Keras writes this layer as a Rescaling whose `scale` is a list: catdog's .keras files
    do the same (the layers' own Rescaling spec keeps its name and writer), and reading
    one back gives this class for a list, the plain Rescaling for a number."""
    from catdog.saving import serialization as ser

    plain = ser.REGISTRY["Rescaling"]

    def from_config(cfg, name):
        scale = cfg.get("scale")
        if isinstance(scale, (list, tuple)):
            try:
                return Rescaling([float(v) for v in scale], float(cfg.get("offset", 0.0)), name=name)
            except (TypeError, ValueError) as e:
                raise ser.ConfigError(f"layer '{name}' (Rescaling): {e}") from None
        return plain.from_config(cfg, name)

    ser.REGISTRY["Rescaling"] = ser.LayerSpec(plain.keras_name, plain.module, plain.cls,
                                              plain.to_config, from_config, plain.has_build)
    ser._BY_CLASS[Rescaling] = ser.LayerSpec(plain.keras_name, plain.module, Rescaling,
                                             plain.to_config, from_config, plain.has_build)


_register_config()


def block(inputs, activation="swish", drop_rate=0.0, name="", filters_in=32, filters_out=16,
          kernel_size=3, strides=1, expand_ratio=1, se_ratio=0.0, id_skip=True):
    """Keras's EfficientNet block: expansion, depthwise, squeeze-and-excite, projection."""
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{name}expand_conv")(inputs)
        x = layers.BatchNormalization(name=f"{name}expand_bn")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(x)
    else:
        x = inputs
    if strides == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x.shape, kernel_size),
                                 name=f"{name}dwconv_pad")(x)
        conv_pad = "valid"
    else:
        conv_pad = "same"
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=conv_pad, use_bias=False,
                               name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(name=f"{name}bn")(x)
    x = layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < se_ratio <= 1:
        filters_se = max(1, int(filters_in * se_ratio))
        se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
        se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
        se = layers.Conv2D(filters_se, 1, padding="same", activation=activation,
                           name=f"{name}se_reduce")(se)
        se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid",
                           name=f"{name}se_expand")(se)
        x = layers.multiply([x, se], name=f"{name}se_excite")
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False,
                      name=f"{name}project_conv")(x)
    x = layers.BatchNormalization(name=f"{name}project_bn")(x)
    if id_skip and strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def EfficientNet(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2,
                 drop_connect_rate=0.2, depth_divisor=8, activation="swish",
                 blocks_args="default", name="efficientnet", include_top=True,
                 weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                 classes=1000, classifier_activation="softmax", weights_name=None):
    if blocks_args == "default":
        blocks_args = DEFAULT_BLOCKS_ARGS
    imagenet_utils.check_weights_arg(weights, include_top, classes)
    imagenet_utils.check_pooling(pooling)
    imagenet = isinstance(weights, str) and weights == "imagenet"
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=default_size,
                                                    min_size=32, require_flatten=include_top,
                                                    weights=weights)
    img_input = image_input(input_shape, input_tensor)

    def round_filters(filters, divisor=depth_divisor):
        filters *= width_coefficient
        new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
        if new_filters < 0.9 * filters:  # do not round down by more than 10%
            new_filters += divisor
        return int(new_filters)

    def round_repeats(repeats):
        return int(math.ceil(depth_coefficient * repeats))

    x = layers.Rescaling(1.0 / 255.0)(img_input)
    x = layers.Normalization(axis=-1)(x)
    if imagenet:
        x = Rescaling([1.0 / math.sqrt(stddev) for stddev in IMAGENET_STDDEV_RGB])(x)
    x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x.shape, 3), name="stem_conv_pad")(x)
    x = layers.Conv2D(round_filters(32), 3, strides=2, padding="valid", use_bias=False,
                      name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)

    blocks_args = copy.deepcopy(blocks_args)
    b = 0
    blocks = float(sum(round_repeats(args["repeats"]) for args in blocks_args))
    for i, args in enumerate(blocks_args):
        if args["repeats"] <= 0:
            raise ValueError("The number of repeats in `EfficientNet` must be > 0. "
                             f"Received: repeats={args['repeats']}")
        args["filters_in"] = round_filters(args["filters_in"])
        args["filters_out"] = round_filters(args["filters_out"])
        for j in range(round_repeats(args.pop("repeats"))):
            if j > 0:
                args["strides"] = 1
                args["filters_in"] = args["filters_out"]
            x = block(x, activation, drop_connect_rate * b / blocks,
                      name=f"block{i + 1}{chr(j + 97)}_", **args)
            b += 1

    x = layers.Conv2D(round_filters(1280), 1, padding="same", use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(name="top_bn")(x)
    x = layers.Activation(activation, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    file = name + (".h5" if include_top else "_notop.h5")
    return finish(img_input, x, name, weights, file)


def EfficientNetB0(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                   pooling=None, classes=1000, classifier_activation="softmax",
                   name="efficientnetb0"):
    """Keras's EfficientNetB0 (see the module doc): weights None, "imagenet" (the official
    file, checked against Keras's md5) or a weights file; input_shape defaults to (224, 224,
    3) with the top, (None, None, 3) (any size) without; at least 32x32."""
    return EfficientNet(1.0, 1.0, 224, 0.2, name=name, include_top=include_top,
                        weights=weights, input_tensor=input_tensor, input_shape=input_shape,
                        pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation, weights_name="b0")


def preprocess_input(x, data_format=None):
    """Keras's placeholder: EfficientNet holds its preprocessing; x unchanged."""
    return x


def decode_predictions(preds, top=5, **kwargs):
    return imagenet_utils.decode_predictions(preds, top=top, **kwargs)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
