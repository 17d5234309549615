"""MobileNetV2 as Keras builds it (keras/src/applications/mobilenet_v2.py): the same layers,
names, order and parameter counts, so Keras weight files load by name and
`base_model.layers[100]` is `block_11_expand_relu` as in the lab."""
from __future__ import annotations

import numpy as np

from catdog import layers
from catdog.applications.imagenet_utils import correct_pad
from catdog.models import Input, Model

ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
BN = dict(epsilon=1e-3, momentum=0.999)


def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # do not round down by more than 10%
        new_v += divisor
    return new_v


def _inverted_res_block(x, expansion, stride, alpha, filters, block_id):
    in_channels = x.shape[-1]
    pointwise_filters = _make_divisible(int(filters * alpha), 8)
    inputs = x
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, 1, padding="same", use_bias=False,
                          name=prefix + "expand")(x)
        x = layers.BatchNormalization(**BN, name=prefix + "expand_BN")(x)
        x = layers.ReLU(6.0, name=prefix + "expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(correct_pad(x.shape, 3), name=prefix + "pad")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, use_bias=False,
                               padding="same" if stride == 1 else "valid",
                               name=prefix + "depthwise")(x)
    x = layers.BatchNormalization(**BN, name=prefix + "depthwise_BN")(x)
    x = layers.ReLU(6.0, name=prefix + "depthwise_relu")(x)
    x = layers.Conv2D(pointwise_filters, 1, padding="same", use_bias=False,
                      name=prefix + "project")(x)
    x = layers.BatchNormalization(**BN, name=prefix + "project_BN")(x)
    if in_channels == pointwise_filters and stride == 1:
        return layers.Add(name=prefix + "add")([inputs, x])
    return x


# (filters, stride, expansion) of blocks 0..16
_BLOCKS = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6),
           (64, 1, 6), (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6),
           (160, 1, 6), (160, 1, 6), (320, 1, 6)]


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights="imagenet",
                input_tensor=None, pooling=None, classes=1000, classifier_activation="softmax",
                name=None):
    """Keras's MobileNetV2. weights: "imagenet" (download/cache, see catdog.weights), None
    (glorot-uniform init), or a path to a Keras .h5 weights file."""
    if alpha not in ALPHAS:
        raise ValueError(f"alpha must be one of {ALPHAS}, got {alpha}")
    if input_shape is None:  # Keras's obtain_input_shape: a free size without the top
        input_shape = (224, 224, 3) if include_top else (None, None, 3)
    input_shape = tuple(None if v is None else int(v) for v in input_shape)
    if len(input_shape) != 3 or input_shape[2] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape}")
    if include_top and None in input_shape:
        raise ValueError("If `include_top` is True, you should specify a static "
                         f"`input_shape`. Received: input_shape={input_shape}")
    sides = [v for v in input_shape[:2] if v is not None]
    if any(v < 32 for v in sides):
        raise ValueError(f"input size must be at least 32x32, got {input_shape[:2]}")
    if any(v > 4096 for v in sides):
        raise ValueError(f"input size must be at most 4096x4096, got {input_shape[:2]}")
    if pooling not in (None, "avg"):
        raise ValueError("pooling must be None or 'avg'")
    if include_top and classes < 1:
        raise ValueError("classes must be >= 1")
    if classifier_activation not in (None, "softmax", "sigmoid", "linear"):
        raise ValueError(f"unsupported classifier_activation {classifier_activation!r}")

    img_input = Input(shape=input_shape, name="input_1") if input_tensor is None else input_tensor
    first_block_filters = _make_divisible(32 * alpha, 8)
    x = layers.Conv2D(first_block_filters, 3, strides=(2, 2), padding="same", use_bias=False,
                      name="Conv1")(img_input)
    x = layers.BatchNormalization(**BN, name="bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        x = _inverted_res_block(x, expansion, stride, alpha, filters, block_id)
    last_block_filters = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_block_filters, 1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(**BN, name="Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    rows = input_shape[0]
    if isinstance(weights, str) and weights == "imagenet" and (
            rows != input_shape[1] or rows not in (96, 128, 160, 192, 224)):
        rows = 224  # Keras names the model after the weights' size (it warns: weights_path)
    model = Model(img_input, x, name=name or f"mobilenetv2_{alpha:.2f}_{rows}")
    if weights is not None:
        from catdog import weights as weights_mod

        path = weights_mod.weights_path(weights, alpha=alpha, size=input_shape[:2],
                                        include_top=include_top)
        model.load_weights(path)
    return model


def preprocess_input(x):
    """Scale pixels from [0, 255] to [-1, 1] (x / 127.5 - 1), on arrays or model tensors."""
    from catdog.models import KerasTensor

    if isinstance(x, KerasTensor):
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name=layers.core._auto_name("preprocess_input"))(x)
    return np.asarray(x, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def decode_predictions(preds, top=5, **kwargs):
    from catdog.applications import imagenet_utils

    return imagenet_utils.decode_predictions(preds, top=top, **kwargs)
