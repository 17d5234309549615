"""Keras 3 model configs (config.json of a `.keras` file, `to_json`) to and from catdog models.

The format is Keras's own (keras/src/saving/serialization_lib.py `serialize_keras_object`,
keras/src/models/functional.py `get_config` / `functional_from_config`,
keras/src/models/sequential.py): every object is
`{"module", "class_name", "config", "registered_name"[, "build_config", "compile_config"]}`;
a Functional model lists its layers, each with `name` and `inbound_nodes` (the call's args,
tensors as `{"class_name": "__keras_tensor__", "config": {"shape", "dtype",
"keras_history": [layer, node, tensor]}}`), then `input_layers` / `output_layers`.

Reading never imports or calls anything a file names: a class is looked up in REGISTRY, an
allow-list keyed by Keras class name, and built by catdog's own code. Before that, the whole
tree is scanned (`check_tree`): a `__lambda__`, a `Lambda` layer, or any object whose
`module` / `registered_name` is outside the supported set is refused with an error naming it
(Keras's safe_mode, made strict: catdog has no unsafe mode).

Adding a layer class is one `register(...)` call: its Keras name, the catdog class, a
function writing the layer-specific keys of its Keras config and one building it from them
(raising ValueError naming the layer for values catdog cannot run).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from catdog import activations as A
from catdog import layers as L
from catdog.layers.preprocessing import (Normalization, RandomBrightness, RandomContrast,
                                         RandomFlip, RandomRotation, RandomTranslation,
                                         RandomZoom, Rescaling, Resizing)

FLOAT32_POLICY = {"module": "keras", "class_name": "DTypePolicy",
                  "config": {"name": "float32"}, "registered_name": None}
MAX_DEPTH = 64  # nesting of JSON objects and of models inside models
MAX_LAYERS = 100_000
# Weights a config may declare, counted before any layer allocates them (a few bytes of JSON
# must not make catdog allocate gigabytes): 2**28 float32 values = 1 GiB, ~2x VGG16.
MAX_PARAMS = 1 << 28


class ConfigError(ValueError):
    """A config catdog cannot (or will not) build; the message names the layer at fault."""


# What building catdog layers on a config's values can raise: a layer given an input of a
# rank it does not take (ZeroPadding2D after Dense) indexes past the shape. At the loader's
# boundary each becomes a ConfigError naming the layer.
_BUILD_ERRORS = (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError, OverflowError)


@dataclass
class LayerSpec:
    keras_name: str
    module: str
    cls: type
    to_config: Callable[[Any], dict]  # layer -> its layer-specific Keras keys
    from_config: Callable[[dict, str], Any]  # (config, name) -> catdog layer
    has_build: bool  # Keras's class overrides build(): its config carries a build_config


REGISTRY: Dict[str, LayerSpec] = {}
_BY_CLASS: Dict[type, LayerSpec] = {}


def register(keras_name, cls, to_config, from_config, has_build=True, module="keras.layers"):
    spec = LayerSpec(keras_name, module, cls, to_config, from_config, has_build)
    REGISTRY[keras_name] = spec
    _BY_CLASS.setdefault(cls, spec)
    return spec


# ---- small readers with errors that name the layer -----------------------------------------
def _want(cfg, key, allowed, name, cls):
    value = cfg.get(key, allowed[0])
    if value not in allowed:
        raise ConfigError(f"layer '{name}' ({cls}): {key}={value!r} is not supported by catdog "
                          f"(supported: {', '.join(map(repr, allowed))})")
    return value


def _none(cfg, keys, name, cls):
    for key in keys:
        if cfg.get(key) is not None:
            raise ConfigError(f"layer '{name}' ({cls}): {key} is not supported by catdog "
                              f"(got {str(cfg[key])[:80]})")


def _int_pair(value, key, name, cls):
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 4096
                       for v in value)):
        raise ConfigError(f"layer '{name}' ({cls}): {key} must be two integers in 1..4096, got "
                          f"{str(value)[:80]}")
    return tuple(value)


def _number(cfg, key, name, cls, default=None, low=-math.inf, high=math.inf):
    value = cfg.get(key, default)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not low <= value <= high):
        raise ConfigError(f"layer '{name}' ({cls}): {key} must be a finite number in "
                          f"[{low}, {high}], got {str(value)[:80]}")
    return float(value)


def _seed(cfg, name, cls):
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"layer '{name}' ({cls}): seed must be an integer or null")
    return seed


def _initializer(class_name):
    return {"module": "keras.initializers", "class_name": class_name,
            "config": ({"seed": None, "input_axes": None, "output_axes": None}
                       if class_name == "GlorotUniform" else {}),
            "registered_name": None}


# ---- activations: Keras 3 serializes the function's own name (swish is silu) -----------------
_ACT_CANONICAL = {"swish": "silu", "hard_swish": "hard_silu", None: "linear"}
_ACT_NAMES = sorted(_ACT_CANONICAL.get(k, k) for k in A._CODES)


def _act_to(layer):
    return _ACT_CANONICAL.get(layer.activation, layer.activation)


def _act_from(cfg, name, cls):
    act = _want(cfg, "activation", ["linear", None] + _ACT_NAMES, name, cls)
    return None if act in ("linear", None) else act


# ---- the layers -------------------------------------------------------------------------
_CONV_NONE = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
              "kernel_constraint", "bias_constraint")


def _conv_to(layer):
    return {"filters": layer.filters, "kernel_size": list(layer.kernel_size),
            "strides": list(layer.strides), "padding": layer.padding,
            "data_format": "channels_last", "dilation_rate": list(layer.dilation_rate),
            "groups": layer.groups, "activation": _act_to(layer), "use_bias": layer.use_bias,
            "kernel_initializer": _initializer("GlorotUniform"),
            "bias_initializer": _initializer("Zeros"),
            **{k: None for k in _CONV_NONE}}


def _conv_common(cfg, name, cls):
    _want(cfg, "data_format", ["channels_last", None], name, cls)
    padding = _want(cfg, "padding", ["valid", "same"], name, cls)
    return (_int_pair(cfg.get("kernel_size"), "kernel_size", name, cls),
            _int_pair(cfg.get("strides", 1), "strides", name, cls), padding,
            bool(cfg.get("use_bias", True)),
            _int_pair(cfg.get("dilation_rate", 1), "dilation_rate", name, cls))


def _small_int(cfg, key, name, cls, default=1):
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 65536:
        raise ConfigError(f"layer '{name}' ({cls}): {key} must be an integer in 1..65536, got "
                          f"{str(value)[:80]}")
    return value


def _conv_layer(make, name, cls):
    """Build a conv layer, Keras's argument errors (groups, dilation with strides) as
    ConfigErrors naming it."""
    try:
        return make()
    except ValueError as e:
        raise ConfigError(f"layer '{name}' ({cls}): {e}") from None


def _conv_from(cfg, name):
    kernel, strides, padding, use_bias, dilation = _conv_common(cfg, name, "Conv2D")
    groups = _small_int(cfg, "groups", name, "Conv2D")
    _none(cfg, _CONV_NONE, name, "Conv2D")
    filters = cfg.get("filters")
    if isinstance(filters, bool) or not isinstance(filters, int) or not 0 < filters <= 65536:
        raise ConfigError(f"layer '{name}' (Conv2D): filters must be an integer in 1..65536")
    act = _act_from(cfg, name, "Conv2D")
    return _conv_layer(lambda: L.Conv2D(filters, kernel, strides=strides, padding=padding,
                                        use_bias=use_bias, activation=act, name=name,
                                        dilation_rate=dilation, groups=groups), name, "Conv2D")


_DW_NONE = ("depthwise_regularizer", "bias_regularizer", "activity_regularizer",
            "depthwise_constraint", "bias_constraint")


def _dw_to(layer):
    return {"depth_multiplier": layer.depth_multiplier, "kernel_size": list(layer.kernel_size),
            "strides": list(layer.strides), "padding": layer.padding,
            "data_format": "channels_last", "dilation_rate": list(layer.dilation_rate),
            "activation": _act_to(layer),
            "use_bias": layer.use_bias, "depthwise_initializer": _initializer("GlorotUniform"),
            "bias_initializer": _initializer("Zeros"), **{k: None for k in _DW_NONE}}


def _dw_from(cfg, name):
    cls = "DepthwiseConv2D"
    kernel, strides, padding, use_bias, dilation = _conv_common(cfg, name, cls)
    multiplier = _small_int(cfg, "depth_multiplier", name, cls)
    _none(cfg, _DW_NONE, name, cls)
    act = _act_from(cfg, name, cls)
    return _conv_layer(lambda: L.DepthwiseConv2D(
        kernel, strides=strides, padding=padding, use_bias=use_bias, activation=act, name=name,
        depth_multiplier=multiplier, dilation_rate=dilation), name, cls)


_SEP_NONE = ("depthwise_regularizer", "pointwise_regularizer", "bias_regularizer",
             "activity_regularizer", "depthwise_constraint", "pointwise_constraint",
             "bias_constraint")


def _sep_to(layer):
    return {"filters": layer.filters, "kernel_size": list(layer.kernel_size),
            "strides": list(layer.strides), "padding": layer.padding,
            "data_format": "channels_last", "dilation_rate": list(layer.dilation_rate),
            "depth_multiplier": layer.depth_multiplier,
            "activation": _act_to(layer), "use_bias": layer.use_bias,
            "depthwise_initializer": _initializer("GlorotUniform"),
            "pointwise_initializer": _initializer("GlorotUniform"),
            "bias_initializer": _initializer("Zeros"), **{k: None for k in _SEP_NONE}}


def _sep_from(cfg, name):
    cls = "SeparableConv2D"
    kernel, strides, padding, use_bias, dilation = _conv_common(cfg, name, cls)
    multiplier = _small_int(cfg, "depth_multiplier", name, cls)
    _none(cfg, _SEP_NONE, name, cls)
    filters = cfg.get("filters")
    if isinstance(filters, bool) or not isinstance(filters, int) or not 0 < filters <= 65536:
        raise ConfigError(f"layer '{name}' ({cls}): filters must be an integer in 1..65536")
    act = _act_from(cfg, name, cls)
    return _conv_layer(lambda: L.SeparableConv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=use_bias, activation=act,
        name=name, depth_multiplier=multiplier, dilation_rate=dilation), name, cls)


def _activation_to(layer):
    return {"activation": _act_to(layer)}


def _activation_from(cfg, name):
    return L.Activation(_act_from(cfg, name, "Activation") or "linear", name=name)


def _flatten_to(layer):
    return {"data_format": "channels_last"}


def _flatten_from(cfg, name):
    _want(cfg, "data_format", ["channels_last", None], name, "Flatten")
    return L.Flatten(name=name)


def _reshape_to(layer):
    return {"target_shape": list(layer.target_shape)}


def _reshape_from(cfg, name):
    shape = cfg.get("target_shape")
    if (not isinstance(shape, list) or len(shape) not in (1, 3) or not all(
            isinstance(d, int) and not isinstance(d, bool) and (d == -1 or 0 < d <= 1 << 24)
            for d in shape)):
        raise ConfigError(f"layer '{name}' (Reshape): target_shape must be 1 or 3 integers, "
                          f"got {str(shape)[:80]}")
    return L.Reshape(tuple(shape), name=name)


def _merge_from(cls):
    def build(cfg, name):
        return cls(name=name)
    return build


_BN_NONE = ("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint")


def _bn_to(layer):
    return {"axis": -1, "momentum": layer.momentum, "epsilon": layer.epsilon,
            "center": layer.center, "scale": layer.scale, "beta_initializer": _initializer("Zeros"),
            "gamma_initializer": _initializer("Ones"),
            "moving_mean_initializer": _initializer("Zeros"),
            "moving_variance_initializer": _initializer("Ones"),
            **{k: None for k in _BN_NONE}, "synchronized": False, "renorm": False,
            "renorm_clipping": None, "renorm_momentum": 0.99}


def _bn_from(cfg, name):
    cls = "BatchNormalization"
    axis = cfg.get("axis", -1)
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    if axis not in (-1, 3):
        raise ConfigError(f"layer '{name}' ({cls}): axis={axis!r}: only the channel axis (-1)")
    center = _want(cfg, "center", [True, False], name, cls)
    scale = _want(cfg, "scale", [True, False], name, cls)
    _want(cfg, "renorm", [False], name, cls)
    _want(cfg, "synchronized", [False], name, cls)
    _none(cfg, _BN_NONE, name, cls)
    return L.BatchNormalization(momentum=_number(cfg, "momentum", name, cls, 0.99, 0.0, 1.0),
                                epsilon=_number(cfg, "epsilon", name, cls, 1e-3, 1e-12, 1.0),
                                center=center, scale=scale, name=name)


def _relu_to(layer):
    mv = layer.max_value
    return {"max_value": None if mv is None else float(mv), "negative_slope": 0.0,
            "threshold": 0.0}


def _relu_from(cfg, name):
    cls = "ReLU"
    if _number(cfg, "negative_slope", name, cls, 0.0) != 0.0:
        raise ConfigError(f"layer '{name}' (ReLU): negative_slope other than 0 is not supported")
    if _number(cfg, "threshold", name, cls, 0.0) != 0.0:
        raise ConfigError(f"layer '{name}' (ReLU): threshold other than 0 is not supported")
    mv = cfg.get("max_value")
    if mv is not None:
        mv = _number(cfg, "max_value", name, cls, None, 1e-6, 1e30)
    return L.ReLU(mv, name=name)


def _pad_to(layer):
    return {"padding": [list(p) for p in layer.padding], "data_format": "channels_last"}


def _pad_from(cfg, name):
    _want(cfg, "data_format", ["channels_last", None], name, "ZeroPadding2D")
    p = cfg.get("padding", 1)
    ok = isinstance(p, list) and len(p) == 2 and all(
        isinstance(q, list) and len(q) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 4096 for v in q)
        for q in p)
    if isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 4096:
        ok, p = True, [[p, p], [p, p]]
    if not ok:
        raise ConfigError(f"layer '{name}' (ZeroPadding2D): padding must be [[top, bottom], "
                          f"[left, right]] of integers in 0..4096, got {str(p)[:80]}")
    return L.ZeroPadding2D(tuple(tuple(q) for q in p), name=name)


def _gap_to(layer):
    return {"data_format": "channels_last", "keepdims": layer.keepdims}


def _gap_from_class(cls):
    def build(cfg, name):
        _want(cfg, "data_format", ["channels_last", None], name, cls.__name__)
        keepdims = _want(cfg, "keepdims", [False, True], name, cls.__name__)
        return cls(keepdims=keepdims, name=name)
    return build


_gap_from = _gap_from_class(L.GlobalAveragePooling2D)


def _dropout_to(layer):
    noise = layer.noise_shape
    return {"rate": layer.rate, "seed": layer.seed,
            "noise_shape": None if noise is None else list(noise)}


def _dropout_from(cfg, name):
    noise = cfg.get("noise_shape")
    if noise is not None and (not isinstance(noise, list) or len(noise) > 5 or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 1 << 24)
            for d in noise)):
        raise ConfigError(f"layer '{name}' (Dropout): noise_shape must be a list of integers or "
                          f"nulls, got {str(noise)[:80]}")
    return L.Dropout(_number(cfg, "rate", name, "Dropout", None, 0.0, 0.999999),
                     noise_shape=noise, seed=_seed(cfg, name, "Dropout"), name=name)


_DENSE_NONE = ("kernel_regularizer", "bias_regularizer", "kernel_constraint",
               "bias_constraint", "quantization_config", "activity_regularizer")


def _dense_to(layer):
    return {"units": layer.units, "activation": _act_to(layer),
            "use_bias": layer.use_bias, "kernel_initializer": _initializer("GlorotUniform"),
            "bias_initializer": _initializer("Zeros"),
            **{k: None for k in _DENSE_NONE if k != "activity_regularizer"}}


def _dense_from(cfg, name):
    units = cfg.get("units")
    if isinstance(units, bool) or not isinstance(units, int) or not 0 < units <= 1 << 20:
        raise ConfigError(f"layer '{name}' (Dense): units must be an integer in 1..{1 << 20}")
    act = _act_from(cfg, name, "Dense")
    _none(cfg, _DENSE_NONE, name, "Dense")
    return L.Dense(units, activation=act, use_bias=bool(cfg.get("use_bias", True)), name=name)


def _add_to(layer):
    return {}


def _add_from(cfg, name):
    return L.Add(name=name)


def _concat_to(layer):
    return {"axis": layer.axis}


def _concat_from(cfg, name):
    axis = cfg.get("axis", -1)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -4 <= axis <= 3:
        raise ConfigError(f"layer '{name}' (Concatenate): axis must be an integer in -4..3, got "
                          f"{str(axis)[:40]}")
    return L.Concatenate(axis=axis, name=name)


def _pool_to(layer):
    return {"pool_size": list(layer.pool_size), "padding": layer.padding,
            "strides": list(layer.strides), "data_format": "channels_last"}


def _pool_from(cls):
    def build(cfg, name):
        cname = cls.__name__
        _want(cfg, "data_format", ["channels_last", None], name, cname)
        pool = _int_pair(cfg.get("pool_size", 2), "pool_size", name, cname)
        strides = cfg.get("strides")
        strides = pool if strides is None else _int_pair(strides, "strides", name, cname)
        padding = _want(cfg, "padding", ["valid", "same"], name, cname)
        return cls(pool_size=pool, strides=strides, padding=padding, name=name)
    return build


def _rescaling_to(layer):
    return {"scale": layer.scale, "offset": layer.offset}


def _channel_rescaling():
    """catdog.applications.efficientnet's Rescaling: one scale per channel (a list), as Keras's
    EfficientNet "imagenet" stem writes Rescaling([1 / sqrt(std), ...]); late import, the
    applications build on the layers this module serializes."""
    from catdog.layers.preprocessing import ChannelRescaling

    return ChannelRescaling


def _rescaling_from(cfg, name):
    scale = cfg.get("scale")
    if isinstance(scale, list):
        if not 1 <= len(scale) <= 65536 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and 0 < v <= 1e30 for v in scale):
            raise ConfigError(f"layer '{name}' (Rescaling): a per-channel scale must be a list "
                              "of positive finite numbers")
        if _number(cfg, "offset", name, "Rescaling", 0.0, -1e30, 1e30) != 0.0:
            raise ConfigError(f"layer '{name}' (Rescaling): a per-channel scale with an offset "
                              "is not supported by catdog")
        return _channel_rescaling()([float(v) for v in scale], name=name)
    return Rescaling(_number(cfg, "scale", name, "Rescaling", None, -1e30, 1e30),
                     _number(cfg, "offset", name, "Rescaling", 0.0, -1e30, 1e30), name=name)


def _normalization_to(layer):
    def plain(v):  # Keras: np.array(input_mean).tolist() (None stays None)
        return None if v is None else np.asarray(v, np.float32).tolist()
    return {"axis": list(layer.axis), "invert": layer.invert, "mean": plain(layer.input_mean),
            "variance": plain(layer.input_variance)}


def _normalization_from(cfg, name):
    cls = "Normalization"
    axis = cfg.get("axis", [-1])
    mean, var = cfg.get("mean"), cfg.get("variance")
    for key, v in (("mean", mean), ("variance", var)):
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) or (
                isinstance(v, list) and len(v) <= 65536
                and all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v))):
            raise ConfigError(f"layer '{name}' ({cls}): {key} must be a number or a list of "
                              "numbers")
    try:
        return Normalization(axis=tuple(axis) if isinstance(axis, list) else axis, mean=mean,
                             variance=var, invert=bool(cfg.get("invert", False)), name=name)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"layer '{name}' ({cls}): {e}") from None


def _resizing_to(layer):
    return {"data_format": "channels_last", "height": layer.height, "width": layer.width,
            "interpolation": layer.interpolation,
            "crop_to_aspect_ratio": layer.crop_to_aspect_ratio,
            "pad_to_aspect_ratio": layer.pad_to_aspect_ratio, "fill_mode": layer.fill_mode,
            "fill_value": layer.fill_value, "antialias": False}


def _resizing_from(cfg, name):
    cls = "Resizing"
    _want(cfg, "data_format", ["channels_last", None], name, cls)
    size = [_small_int(cfg, key, name, cls, None) for key in ("height", "width")]
    try:
        return Resizing(*size, interpolation=_want(cfg, "interpolation", ["bilinear", "nearest"],
                                                   name, cls),
                        crop_to_aspect_ratio=_want(cfg, "crop_to_aspect_ratio", [False, True],
                                                   name, cls),
                        pad_to_aspect_ratio=_want(cfg, "pad_to_aspect_ratio", [False, True],
                                                  name, cls),
                        fill_mode=_want(cfg, "fill_mode", ["constant"], name, cls),
                        fill_value=_number(cfg, "fill_value", name, cls, 0.0),
                        antialias=_want(cfg, "antialias", [False], name, cls), name=name)
    except ValueError as e:
        raise ConfigError(f"layer '{name}' ({cls}): {e}") from None


def _color_to(layer):
    return {"data_format": "channels_last", "factor": list(layer.factor),
            "value_range": list(layer.value_range), "seed": layer.seed}


def _color_from(cls):
    def build(cfg, name):
        cname = cls.__name__
        _want(cfg, "data_format", ["channels_last", None], name, cname)
        try:
            return cls(_factor(cfg.get("factor"), "factor", name, cname),
                       value_range=cfg.get("value_range", (0, 255)),
                       seed=_seed(cfg, name, cname), name=name)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"layer '{name}' ({cname}): {e}") from None
    return build


_FILL = ["reflect", "wrap", "constant", "nearest"]
_INTERP = ["bilinear", "nearest"]


def _flip_to(layer):
    return {"data_format": "channels_last", "seed": layer.seed, "mode": layer.mode}


def _flip_from(cfg, name):
    _want(cfg, "data_format", ["channels_last", None], name, "RandomFlip")
    mode = _want(cfg, "mode", ["horizontal_and_vertical", "horizontal", "vertical"], name,
                 "RandomFlip")
    return RandomFlip(mode, seed=_seed(cfg, name, "RandomFlip"), name=name)


def _factor(value, key, name, cls):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(f"layer '{name}' ({cls}): {key} must be a number or a pair")
        return [_number({key: v}, key, name, cls) for v in value]
    return _number({key: value}, key, name, cls)


def _geo_common(layer):
    return {"fill_mode": layer.fill_mode, "fill_value": layer.fill_value,
            "interpolation": layer.interpolation, "seed": layer.seed}


def _geo_args(cfg, name, cls):
    _want(cfg, "data_format", ["channels_last", None], name, cls)
    return dict(fill_mode=_want(cfg, "fill_mode", _FILL, name, cls),
                interpolation=_want(cfg, "interpolation", _INTERP, name, cls),
                seed=_seed(cfg, name, cls),
                fill_value=_number(cfg, "fill_value", name, cls, 0.0))


def _pair_of(lo, hi):
    return [lo, hi]


def _rotation_to(layer):
    return {"data_format": "channels_last", "factor": _pair_of(layer.lower, layer.upper),
            **_geo_common(layer)}


def _rotation_from(cfg, name):
    try:
        return RandomRotation(_factor(cfg.get("factor"), "factor", name, "RandomRotation"),
                              name=name, **_geo_args(cfg, name, "RandomRotation"))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"layer '{name}' (RandomRotation): {e}") from None


def _zoom_to(layer):
    return {"height_factor": _pair_of(layer.height_lower, layer.height_upper),
            "width_factor": (None if layer.width_lower is None
                             else _pair_of(layer.width_lower, layer.width_upper)),
            "data_format": "channels_last", **_geo_common(layer)}


def _zoom_from(cfg, name):
    cls = "RandomZoom"
    wf = cfg.get("width_factor")
    try:
        return RandomZoom(_factor(cfg.get("height_factor"), "height_factor", name, cls),
                          None if wf is None else _factor(wf, "width_factor", name, cls),
                          name=name, **_geo_args(cfg, name, cls))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"layer '{name}' ({cls}): {e}") from None


def _translation_to(layer):
    return {"height_factor": _pair_of(layer.height_lower, layer.height_upper),
            "width_factor": _pair_of(layer.width_lower, layer.width_upper),
            "data_format": "channels_last", **_geo_common(layer)}


def _translation_from(cfg, name):
    cls = "RandomTranslation"
    try:
        return RandomTranslation(_factor(cfg.get("height_factor"), "height_factor", name, cls),
                                 _factor(cfg.get("width_factor"), "width_factor", name, cls),
                                 name=name, **_geo_args(cfg, name, cls))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"layer '{name}' ({cls}): {e}") from None


register("Conv2D", L.Conv2D, _conv_to, _conv_from)
register("DepthwiseConv2D", L.DepthwiseConv2D, _dw_to, _dw_from)
register("BatchNormalization", L.BatchNormalization, _bn_to, _bn_from)
register("ReLU", L.ReLU, _relu_to, _relu_from, has_build=False)
register("ZeroPadding2D", L.ZeroPadding2D, _pad_to, _pad_from)
register("Add", L.Add, _add_to, _add_from)
register("GlobalAveragePooling2D", L.GlobalAveragePooling2D, _gap_to, _gap_from, has_build=False)
register("Dropout", L.Dropout, _dropout_to, _dropout_from, has_build=False)
register("Dense", L.Dense, _dense_to, _dense_from)
register("MaxPooling2D", L.MaxPooling2D, _pool_to, _pool_from(L.MaxPooling2D), has_build=False)
register("AveragePooling2D", L.AveragePooling2D, _pool_to, _pool_from(L.AveragePooling2D), has_build=False)
register("Rescaling", Rescaling, _rescaling_to, _rescaling_from)
register("RandomFlip", RandomFlip, _flip_to, _flip_from)
register("Normalization", Normalization, _normalization_to, _normalization_from)
register("Resizing", Resizing, _resizing_to, _resizing_from)
register("RandomContrast", RandomContrast, _color_to, _color_from(RandomContrast))
register("RandomBrightness", RandomBrightness, _color_to, _color_from(RandomBrightness))
register("RandomRotation", RandomRotation, _rotation_to, _rotation_from)
register("RandomZoom", RandomZoom, _zoom_to, _zoom_from)
register("RandomTranslation", RandomTranslation, _translation_to, _translation_from)
register("SeparableConv2D", L.SeparableConv2D, _sep_to, _sep_from)
register("Activation", L.Activation, _activation_to, _activation_from, has_build=False)
register("Flatten", L.Flatten, _flatten_to, _flatten_from)
register("Reshape", L.Reshape, _reshape_to, _reshape_from, has_build=False)
register("GlobalMaxPooling2D", L.GlobalMaxPooling2D, _gap_to,
         _gap_from_class(L.GlobalMaxPooling2D), has_build=False)
register("Concatenate", L.Concatenate, _concat_to, _concat_from)
for _cls in (L.Multiply, L.Subtract, L.Maximum, L.Minimum, L.Average):
    register(_cls.__name__, _cls, _add_to, _merge_from(_cls))

# Operations a Keras functional graph records for arithmetic on tensors (keras_tensor.py's
# __add__ ... __neg__ call keras.ops.Add()(x, 3.0) ...): preprocess_input's x / 127.5 - 1,
# MobileNetV3's relu6(x + 3) * (1 / 6). Each is an entry of the functional config with module
# keras.src.ops.numpy, config {"name"} and the call's two arguments (a tensor and a number, in
# the order written, or two tensors) as inbound_nodes args. catdog builds them with its own
# tensor arithmetic (catdog/layers/operations.py): operations, not layers, as in Keras.
OPS_MODULE = "keras.src.ops.numpy"
KERAS_OPS = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply",
             "TrueDivide": "divide", "Negative": "negative"}
# The "caffe" preprocess_input on a tensor (keras/src/applications/imagenet_utils.py,
# _preprocess_tensor_input): x[..., i] is GetItem(x, [Ellipsis, i]), ops.stack(..., axis=-1) a
# Stack, then an Add whose second argument is the mean as a constant tensor (`__tensor__`).
CHANNEL_OPS = ("GetItem", "Stack")
MAX_CONSTANT_VALUES = 64  # a constant tensor argument: one value per channel

# ---- the tree scan: what a file may name at all ---------------------------------------------
MODEL_CLASSES = {"Functional": ("keras.src.models.functional", "keras", "keras.models"),
                 "Sequential": ("keras", "keras.src.models.sequential", "keras.models"),
                 "Model": ("keras", "keras.src.models.model", "keras.models")}
OTHER_CLASSES = {
    "keras": {"DTypePolicy"},
    "keras.layers": {"InputLayer"},
    "keras.initializers": {"GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "Zeros",
                           "Ones", "Constant", "RandomNormal", "RandomUniform",
                           "TruncatedNormal", "LecunNormal", "LecunUniform", "VarianceScaling",
                           "Orthogonal"},
    "keras.optimizers": {"Adam", "RMSprop", "SGD"},
    "keras.losses": {"BinaryCrossentropy", "SparseCategoricalCrossentropy",
                     "CategoricalCrossentropy"},
    "keras.metrics": {"BinaryAccuracy", "SparseCategoricalAccuracy", "CategoricalAccuracy",
                      "Accuracy"},
}
SPECIAL = {"__keras_tensor__", "__tensor__", "__ellipsis__"}


def _where(path):
    return "/".join(str(p) for p in path) or "the root"


def check_tree(node, path=(), depth=0):
    """Refuse anything a config names that catdog would not build itself (see module doc)."""
    if depth > MAX_DEPTH:
        raise ConfigError(f"config nested deeper than {MAX_DEPTH} levels at {_where(path)}")
    if isinstance(node, list):
        for i, v in enumerate(node):
            check_tree(v, path + (i,), depth + 1)
        return
    if not isinstance(node, dict):
        return
    cname = node.get("class_name")
    if cname is not None:
        label = node.get("name")
        if not isinstance(label, str) and isinstance(node.get("config"), dict):
            label = node["config"].get("name")
        who = f"'{label}' " if isinstance(label, str) else ""
        module, reg = node.get("module"), node.get("registered_name")
        if cname == "__lambda__" or cname == "Lambda":
            raise ConfigError(
                f"refusing {who}({cname}) at {_where(path)}: a Lambda holds Python code, and "
                "loading a file never runs code (Keras's safe_mode; catdog has no unsafe mode)")
        if not isinstance(cname, str):
            raise ConfigError(f"class_name at {_where(path)} is not a string")
        if not isinstance(module, (str, type(None))) or not isinstance(reg, (str, type(None))):
            raise ConfigError(f"module / registered_name at {_where(path)} must be strings")
        if reg is not None and reg != cname:
            raise ConfigError(
                f"refusing {who}({cname}) at {_where(path)}: registered_name {reg!r} names a "
                "custom registered class; catdog builds only Keras's own classes it supports")
        if cname not in SPECIAL:
            allowed = (cname in REGISTRY and module == REGISTRY[cname].module
                       or (cname in KERAS_OPS or cname in CHANNEL_OPS) and module == OPS_MODULE
                       or cname in MODEL_CLASSES and module in MODEL_CLASSES[cname]
                       or cname in OTHER_CLASSES.get(module, ()))
            if not allowed:
                if isinstance(module, str) and (module == "keras" or module.startswith("keras.")):
                    raise ConfigError(
                        f"layer {who}is a Keras {cname} ({module}), which catdog does not "
                        f"support (at {_where(path)}); supported layers: "
                        f"{', '.join(sorted(REGISTRY))}")
                raise ConfigError(
                    f"refusing {who}({cname}) at {_where(path)}: module {module!r} is outside "
                    "the Keras classes catdog supports; loading a file never imports code")
    for k, v in node.items():
        check_tree(v, path + (k,), depth + 1)


# ---- writing ----------------------------------------------------------------------------
def _spec_for_class(cls) -> Optional[LayerSpec]:
    spec = _BY_CLASS.get(cls)
    if spec is None and cls is _channel_rescaling():
        spec = REGISTRY["Rescaling"]  # Keras's Rescaling with a list of scales
    return spec


def _spec_of(layer) -> LayerSpec:
    spec = _spec_for_class(type(layer))
    if spec is None:
        raise ConfigError(f"layer '{layer.name}' ({type(layer).__name__}) has no Keras config "
                          "in catdog's registry (catdog/saving/serialization.py)")
    return spec


def _tensor(t, producer_node=0):
    return {"class_name": "__keras_tensor__",
            "config": {"shape": [None, *t.shape], "dtype": "float32",
                       "keras_history": [t.layer.name, producer_node, 0]}}


def _shapes(t):
    """A node's input shape(s) as Keras's build_config has them, batch first."""
    if not t.inputs:
        return None
    shapes = [[None, *i.shape] for i in t.inputs]
    return shapes if len(shapes) > 1 else shapes[0]


def _build_config(shape):
    return {"input_shape": [None, *shape]} if shape is not None else None


def layer_config(layer, input_shapes=None) -> dict:
    """The Keras object dict of one layer or model (without inbound_nodes); input_shapes
    (batch first) go into its build_config."""
    from catdog.models import Model, Sequential

    if isinstance(layer, Sequential):
        return sequential_config(layer)
    if isinstance(layer, Model):
        return functional_config(layer)
    if isinstance(layer, L.InputLayer):
        return {"module": "keras.layers", "class_name": "InputLayer",
                "config": {"batch_shape": [None, *layer.output_shape], "dtype": "float32",
                           "sparse": False, "ragged": False, "name": layer.name,
                           "optional": False},
                "registered_name": None}
    op = getattr(layer, "keras_op", None)
    if getattr(layer, "is_operation", False) and op is not None:
        return {"module": OPS_MODULE, "class_name": op, "config": {"name": layer.name},
                "registered_name": op}
    spec = _spec_of(layer)
    # augmentation layers have no weights; catdog marks them not trainable, Keras leaves
    # its default (true)
    trainable = True if getattr(layer, "is_augmentation", False) else bool(layer.trainable)
    cfg = {"name": layer.name, "trainable": trainable, "dtype": dict(FLOAT32_POLICY),
           **spec.to_config(layer)}
    out = {"module": spec.module, "class_name": spec.keras_name, "config": cfg,
           "registered_name": None}
    if spec.has_build and input_shapes is not None:
        out["build_config"] = {"input_shape": input_shapes}
    return out


def sequential_config(model) -> dict:
    model._require_built()
    layers = [layer_config(t.layer, _shapes(t)) for t in model._nodes]
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": model.name, "trainable": bool(model.trainable),
                       "dtype": dict(FLOAT32_POLICY), "layers": layers,
                       "build_input_shape": [None, *model.input_shape]},
            "registered_name": None, "build_config": _build_config(model.input_shape),
            "compile_config": {}}


def functional_config(model) -> dict:
    from catdog.layers.operations import ChannelStack
    from catdog.models import Model, Sequential, keras_node_order

    entries, seen = [], set()
    for t in keras_node_order(model._nodes[-1]):  # Keras's order, as its get_config writes
        layer = t.layer
        if id(layer) in seen:
            raise ConfigError(f"model '{model.name}': layer '{layer.name}' is called more than "
                              "once; catdog writes layers called once")
        seen.add(id(layer))
        cfg = layer_config(layer, _shapes(t))
        cfg["name"] = layer.name
        if not t.inputs:
            cfg["inbound_nodes"] = []
        elif isinstance(layer, ChannelStack):  # its GetItems first, then the Stack of them
            src = t.inputs[0]
            for sname, i in zip(layer.slice_names, layer.order):
                entries.append({"module": OPS_MODULE, "class_name": "GetItem",
                                "config": {"name": sname}, "registered_name": "GetItem",
                                "name": sname, "inbound_nodes": [{"args": [
                                    _tensor(src), [{"class_name": "__ellipsis__", "config": {}},
                                                   i]], "kwargs": {}}]})
            cfg["config"]["axis"] = -1
            cfg["inbound_nodes"] = [{"args": [[
                {"class_name": "__keras_tensor__",
                 "config": {"shape": [None, *src.shape[:-1]], "dtype": "float32",
                            "keras_history": [sname, 0, 0]}} for sname in layer.slice_names]],
                "kwargs": {}}]
        else:
            if getattr(layer, "is_operation", False):  # keras.ops: the call's own arguments
                args = [_tensor(i) for i in t.inputs]
                if getattr(layer, "constant", None) is not None:
                    args.insert(0 if layer.reverse else 1, layer.constant)
            elif len(t.inputs) > 1:  # a merging layer: its inputs as one list argument
                args = [[_tensor(i) for i in t.inputs]]
            else:
                args = [_tensor(t.inputs[0])]
            kwargs = {}
            if isinstance(layer, Model) and t.training is not None:
                kwargs["training"] = bool(t.training)
            if isinstance(layer, (Model, L.BatchNormalization)):
                kwargs["mask"] = None
            cfg["inbound_nodes"] = [{"args": args, "kwargs": kwargs}]
        entries.append(cfg)

    def ref(t):
        functional = isinstance(t.layer, Model) and not isinstance(t.layer, Sequential)
        return [t.layer.name, 1 if functional else 0, 0]

    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": model.name, "trainable": bool(model.trainable),
                       "layers": entries, "input_layers": ref(model._nodes[0]),
                       "output_layers": ref(model._output)},
            "registered_name": "Functional", "build_config": {"input_shape": None},
            "compile_config": {}}


def model_config(model) -> dict:
    """The top-level object dict Keras writes as config.json, compile_config included."""
    from catdog.models import Sequential

    cfg = sequential_config(model) if isinstance(model, Sequential) else functional_config(model)
    compiled = getattr(model, "_compiled", None)
    if compiled is not None:
        from catdog.saving import compile_config

        cfg["compile_config"] = compile_config.to_config(compiled)
    return cfg


# ---- reading ----------------------------------------------------------------------------
def _obj(node, what):
    if not isinstance(node, dict) or not isinstance(node.get("config", {}), dict):
        raise ConfigError(f"{what}: expected a Keras object (a JSON object with class_name "
                          f"and config), got {type(node).__name__}")
    return node


def _layer_name(node, what):
    cfg = node.get("config") or {}
    name = node.get("name", cfg.get("name"))
    if not isinstance(name, str) or not name or len(name) > 256:
        raise ConfigError(f"{what}: a layer without a valid name (got {str(name)[:40]!r})")
    return name


def _declared_params(layer, shape):
    """Weights `layer` will allocate when built on per-sample `shape` (its config's sizes)."""
    c = shape[-1] if shape else 0
    c = c if isinstance(c, int) else 0
    if isinstance(layer, L.DepthwiseConv2D):
        return (layer.kernel_size[0] * layer.kernel_size[1] + 1) * c * layer.depth_multiplier
    if isinstance(layer, L.Conv2D):  # groups divide c: an upper bound
        return layer.kernel_size[0] * layer.kernel_size[1] * c * layer.filters + layer.filters
    if isinstance(layer, L.SeparableConv2D):  # depthwise (c * m), pointwise (c * m -> filters)
        cm = c * layer.depth_multiplier
        return layer.kernel_size[0] * layer.kernel_size[1] * cm + cm * layer.filters + layer.filters
    if isinstance(layer, L.Dense):
        return c * layer.units + layer.units
    if isinstance(layer, L.BatchNormalization):
        return 4 * c
    if isinstance(layer, Normalization):
        return 2 * c + 1
    return 0


class _Builder:
    def __init__(self):
        self.count = 0
        self.names = set()
        self.params = 0

    def budget(self, layer, shape):
        self.params += _declared_params(layer, tuple(shape or ()))
        if self.params > MAX_PARAMS:
            raise ConfigError(f"layer '{layer.name}': the config declares more than "
                              f"{MAX_PARAMS} weights in all, catdog's bound for a file")

    def _new_name(self, name):
        self.count += 1
        if self.count > MAX_LAYERS:
            raise ConfigError(f"the config has more than {MAX_LAYERS} layers")

    def layer(self, node, depth):
        node = _obj(node, "layer")
        cname = node.get("class_name")
        name = _layer_name(node, f"a {cname} layer")
        self._new_name(name)
        cfg = node.get("config") or {}
        if cname in ("Functional", "Model"):
            return self.functional(cfg, depth + 1)
        if cname == "Sequential":
            return self.sequential(cfg, depth + 1)
        if cname == "InputLayer":
            raise ConfigError(f"InputLayer '{name}' can only start a model")
        spec = REGISTRY.get(cname)
        if spec is None:
            raise ConfigError(f"layer '{name}' is a Keras {cname}, which catdog does not support")
        try:
            layer = spec.from_config(cfg, name)
        except ConfigError:
            raise
        except _BUILD_ERRORS as e:
            raise ConfigError(f"layer '{name}' ({cname}): {e}") from None
        trainable = cfg.get("trainable", True)
        if not isinstance(trainable, bool):
            raise ConfigError(f"layer '{name}' ({cname}): trainable must be true or false")
        if layer._weights is not None and not getattr(layer, "is_augmentation", False):
            layer.trainable = trainable
        return layer

    @staticmethod
    def input_shape(cfg, name):
        shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
        if shape is None and "shape" in cfg:
            shape = [None, *cfg["shape"]]
        def size(v):
            return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1 << 20

        # height and width may be null: a free input size (a graph per size it meets)
        if (not isinstance(shape, list) or len(shape) not in (2, 4) or not size(shape[-1])
                or not all(v is None or size(v) for v in shape[1:-1])):
            raise ConfigError(f"InputLayer '{name}': batch_shape must be [null, height, width, "
                              f"channels] or [null, features] with positive sizes (height and "
                              f"width may be null), got {str(shape)[:80]}")
        if cfg.get("sparse") or cfg.get("ragged"):
            raise ConfigError(f"InputLayer '{name}': sparse or ragged inputs are not supported")
        return tuple(shape[1:])

    def sequential(self, cfg, depth):
        from catdog.models import Input, Sequential

        if depth > MAX_DEPTH:
            raise ConfigError(f"models nested deeper than {MAX_DEPTH}")
        name = _layer_name({"config": cfg}, "a Sequential model")
        items = cfg.get("layers")
        if not isinstance(items, list):
            raise ConfigError(f"Sequential '{name}': 'layers' must be a list")
        model = Sequential(name=name)
        for i, node in enumerate(items):
            node = _obj(node, f"Sequential '{name}' layer {i}")
            if node.get("class_name") == "InputLayer":
                if i:
                    raise ConfigError(f"Sequential '{name}': an InputLayer can only come first")
                icfg = node.get("config") or {}
                lname = _layer_name(node, f"Sequential '{name}' input")
                model.add(Input(self.input_shape(icfg, lname), name=lname))
                continue
            try:
                layer = self.layer(node, depth)
                if model._nodes:
                    shape = model.output_shape
                else:
                    shape = model._known_input_shape()
                self.budget(layer, shape)
                model.add(layer)
            except ConfigError:
                raise
            except _BUILD_ERRORS as e:
                raise ConfigError(f"Sequential '{name}' layer {i} ('{_layer_name(node, '?')}', "
                                  f"{node.get('class_name')}): {e}") from None
        shape = cfg.get("build_input_shape")
        if not model._nodes and isinstance(shape, list) and len(shape) in (2, 4):
            try:
                model._require_built(tuple(shape[1:]))
            except _BUILD_ERRORS as e:
                raise ConfigError(f"Sequential '{name}': {e}") from None
        self._trainable(model, cfg, name)
        return model

    @staticmethod
    def _trainable(model, cfg, name):
        trainable = cfg.get("trainable", True)
        if not isinstance(trainable, bool):
            raise ConfigError(f"model '{name}': trainable must be true or false")
        model._trainable = trainable  # the layers carry their own flags already

    @staticmethod
    def constant(arg, what):
        """A `__tensor__` argument: a small float32 constant (one value per channel)."""
        cfg = arg.get("config")
        if not isinstance(cfg, dict) or cfg.get("dtype", "float32") != "float32":
            raise ConfigError(f"{what}: a constant tensor must be float32")
        try:
            value = np.asarray(cfg.get("value"), dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{what}: a constant tensor's value is not a nested list of "
                              "numbers") from None
        if value.size > MAX_CONSTANT_VALUES or value.ndim > 4 or not np.all(np.isfinite(value)):
            raise ConfigError(f"{what}: catdog takes constant tensors of at most "
                              f"{MAX_CONSTANT_VALUES} finite values, got shape {value.shape}")
        return value.astype(np.float32)

    @staticmethod
    def channel_op(cname, lname, args, kwargs, cfg, tensor, where):
        """GetItem(x, [Ellipsis, i]) -> channel i of x; Stack([channels], axis) -> x's channels
        reordered (catdog.layers.operations)."""
        from catdog.layers.operations import ChannelSlice, stack

        what = f"{where} ({cname})"
        if kwargs or len(args) != (2 if cname == "GetItem" else 1):
            raise ConfigError(f"{what}: unexpected arguments")
        try:
            if cname == "GetItem":
                key = args[1]
                if (not isinstance(key, list) or len(key) != 2 or not isinstance(key[0], dict)
                        or key[0].get("class_name") != "__ellipsis__"
                        or not isinstance(key[1], int) or isinstance(key[1], bool)):
                    raise ConfigError(f"{what}: catdog takes x[..., i] (one channel), got "
                                      f"{str(key)[:60]}")
                return ChannelSlice(tensor(args[0], where), key[1], name=lname)
            axis = cfg.get("axis", 0)
            if not isinstance(args[0], list) or not isinstance(axis, int):
                raise ConfigError(f"{what}: expected a list of tensors and an int axis")
            return stack([tensor(a, where) for a in args[0]], axis=axis, name=lname)
        except ConfigError:
            raise
        except (NotImplementedError, IndexError, *_BUILD_ERRORS) as e:
            raise ConfigError(f"{what}: {e}") from None

    @staticmethod
    def operation(cname, lname, args, kwargs, tensor, where):
        """A keras.ops call (KERAS_OPS) on its recorded arguments -> its output tensor."""
        from catdog.layers.operations import ScalarAffine, arithmetic

        what = f"{where} ({cname})"
        if kwargs:
            raise ConfigError(f"{what}: keyword arguments {sorted(kwargs)[:4]} are not supported")
        want = 1 if cname == "Negative" else 2
        if len(args) != want:
            raise ConfigError(f"{what}: takes {want} argument(s), got {len(args)}")
        values = []
        for a in args:
            if isinstance(a, dict) and a.get("class_name") == "__tensor__":
                values.append(_Builder.constant(a, what))
            elif isinstance(a, dict):
                values.append(tensor(a, where))
            elif isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a):
                values.append(a)
            else:
                raise ConfigError(f"{what}: catdog runs it on tensors and finite numbers, got "
                                  f"{str(a)[:60]}")
        tensors = [i for i, v in enumerate(values) if not isinstance(v, (int, float, np.ndarray))]
        try:
            if cname == "Negative":
                if tensors != [0]:
                    raise ConfigError(f"{what}: expected a tensor argument")
                return ScalarAffine(-1.0, 0.0, "negative", name=lname)(values[0])
            if not tensors:
                raise ConfigError(f"{what}: two numbers and no tensor")
            reverse = tensors == [1]  # c <op> x
            a, b = (values[1], values[0]) if reverse else (values[0], values[1])
            out = arithmetic(KERAS_OPS[cname], a, b, reverse=reverse, name=lname)
        except ConfigError:
            raise
        except ZeroDivisionError:
            raise ConfigError(f"{what}: a division by 0") from None
        except (NotImplementedError, *_BUILD_ERRORS) as e:
            raise ConfigError(f"{what}: {e}") from None
        if out is NotImplemented:
            raise ConfigError(f"{what}: unsupported arguments")
        return out

    def functional(self, cfg, depth):
        from catdog.models import Input, KerasTensor, Model

        if depth > MAX_DEPTH:
            raise ConfigError(f"models nested deeper than {MAX_DEPTH}")
        name = _layer_name({"config": cfg}, "a Functional model")
        items = cfg.get("layers")
        if not isinstance(items, list) or not items:
            raise ConfigError(f"model '{name}': 'layers' must be a non-empty list")
        made: Dict[str, KerasTensor] = {}

        def tensor(arg, where):
            if (not isinstance(arg, dict) or arg.get("class_name") != "__keras_tensor__"
                    or not isinstance(arg.get("config"), dict)):
                raise ConfigError(f"model '{name}', {where}: expected a tensor argument")
            hist = arg["config"].get("keras_history")
            if not isinstance(hist, list) or not hist or not isinstance(hist[0], str):
                raise ConfigError(f"model '{name}', {where}: bad keras_history")
            if hist[0] not in made:
                raise ConfigError(f"model '{name}', {where}: input from layer '{hist[0]}', "
                                  "which is not defined before it")
            return made[hist[0]]

        for i, node in enumerate(items):
            node = _obj(node, f"model '{name}' layer {i}")
            lname = _layer_name(node, f"model '{name}' layer {i}")
            if lname in made:
                raise ConfigError(f"model '{name}': two layers named '{lname}'")
            cname = node.get("class_name")
            inbound = node.get("inbound_nodes", [])
            if cname == "InputLayer":
                made[lname] = Input(self.input_shape(node.get("config") or {}, lname), name=lname)
                continue
            if not isinstance(inbound, list) or len(inbound) != 1 or not isinstance(inbound[0], dict):
                raise ConfigError(f"layer '{lname}' ({cname}) in model '{name}': catdog runs "
                                  f"layers called exactly once (it has "
                                  f"{len(inbound) if isinstance(inbound, list) else '?'} calls)")
            call = inbound[0]
            args, kwargs = call.get("args", []), call.get("kwargs", {}) or {}
            if not isinstance(args, list) or not args or not isinstance(kwargs, dict):
                raise ConfigError(f"layer '{lname}' in model '{name}': bad inbound node")
            where = f"layer '{lname}'"
            if cname in KERAS_OPS and node.get("module") == OPS_MODULE:
                self._new_name(lname)
                made[lname] = self.operation(cname, lname, args, kwargs, tensor, where)
                continue
            if cname in CHANNEL_OPS and node.get("module") == OPS_MODULE:
                self._new_name(lname)
                made[lname] = self.channel_op(cname, lname, args, kwargs,
                                              node.get("config") or {}, tensor, where)
                continue
            layer = self.layer(node, depth)
            extra = set(kwargs) - {"training", "mask"}
            if extra or kwargs.get("mask") is not None:
                raise ConfigError(f"{where} ({cname}): call arguments {sorted(extra) or ['mask']} "
                                  "are not supported")
            training = kwargs.get("training")
            if training is not None and not isinstance(training, bool):
                raise ConfigError(f"{where}: training must be true, false or null")
            # training=False on a nested model is the lab's base_model(x, training=False);
            # on a single layer Keras records the call context, which its fit overrides.
            if not isinstance(layer, Model):
                training = None
            if len(args) != 1:
                raise ConfigError(f"{where} ({cname}): expected one argument, got {len(args)}")
            arg = args[0]
            first = (arg[0] if arg else None) if isinstance(arg, list) else arg
            self.budget(layer, tensor(first, where).shape if first is not None else None)
            try:
                if isinstance(arg, list):
                    out = layer([tensor(a, where) for a in arg], training=training)
                else:
                    out = layer(tensor(arg, where), training=training)
            except ConfigError:
                raise
            except _BUILD_ERRORS as e:
                raise ConfigError(f"{where} ({cname}) in model '{name}': {e}") from None
            made[lname] = out

        def ref(spec, what):
            if isinstance(spec, list) and len(spec) == 1 and isinstance(spec[0], list):
                spec = spec[0]
            if not isinstance(spec, list) or not spec or spec[0] not in made:
                raise ConfigError(f"model '{name}': {what} {str(spec)[:60]} names no layer")
            return made[spec[0]]

        try:
            model = Model(ref(cfg.get("input_layers"), "input_layers"),
                          ref(cfg.get("output_layers"), "output_layers"), name=name)
        except ConfigError:
            raise
        except _BUILD_ERRORS as e:
            raise ConfigError(f"model '{name}': {e}") from None
        self._trainable(model, cfg, name)
        return model


def model_from_config(config: dict):
    """A catdog model from a Keras object dict (config.json), after `check_tree`."""
    config = _obj(config, "config.json")
    check_tree(config)
    cname = config.get("class_name")
    if cname not in MODEL_CLASSES:
        raise ConfigError(f"config.json describes a {cname}, not a Functional or Sequential model")
    b = _Builder()
    cfg = config.get("config") or {}
    return b.sequential(cfg, 0) if cname == "Sequential" else b.functional(cfg, 0)


def layer_from_config(config: dict):
    """One layer (or model) from its Keras object dict."""
    config = _obj(config, "layer config")
    check_tree(config)
    return _Builder().layer(config, 0)


def layer_from_class(cls, config: dict):
    """`cls.from_config(config)`: a layer of catdog class `cls` from its Keras config."""
    spec = _spec_for_class(cls)
    if spec is None:
        raise ConfigError(f"{cls.__name__} has no Keras config in catdog's registry")
    if not isinstance(config, dict):
        raise ConfigError(f"{cls.__name__}.from_config takes a dict, got {type(config).__name__}")
    return layer_from_config({"module": spec.module, "class_name": spec.keras_name,
                              "config": config, "registered_name": None})
