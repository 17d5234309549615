"""Keras's image preprocessing layers, run by catdog's C data pipeline (csrc/data/augment.c).

RandomFlip, RandomRotation, RandomZoom, RandomTranslation and Rescaling take Keras's
arguments with Keras's meanings. Inside a model they carry the configuration the C
augmentation runs (on loader worker threads, during fit only); called directly on a NumPy
batch (as a notebook does to show augmented samples) they augment it at once, as Keras's
layers do when called eagerly.

Randomness: every draw is keyed by (seed, epoch, sample, position of the op) with the
counter RNG, so results do not depend on thread count. Differences from Keras 3 on purpose:
"horizontal_and_vertical" flips each axis with its own coin (Keras 2 did; Keras 3 uses one
coin for both), and the random stream is catdog's own (same distributions, not the same
numbers as TensorFlow's).
"""
from __future__ import annotations

import itertools
import math
from typing import Optional

import numpy as np

try:  # the engine's layer base (symbolic calls, names) when the Python API is present
    from catdog.layers.core import Layer as _Base
except ImportError:  # pragma: no cover - the data pipeline on its own
    class _Base:  # minimal stand-in: a name and a trainable flag
        _names = itertools.count()

        def __init__(self, name=None, trainable=True):
            self.name = name or f"{type(self).__name__.lower()}_{next(_Base._names)}"
            self.trainable = trainable

        def __call__(self, inputs, training=None):
            raise TypeError(f"layer '{self.name}' can only be called on NumPy arrays here")

try:
    from catdog.layers.core import Rescaling as _RescalingBase
except ImportError:  # pragma: no cover
    _RescalingBase = _Base

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("bilinear", "nearest")


def _check_choice(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}")
    return value


def _factor_range(factor, what, low=None, high=None):
    """Keras: a single value f means (-f, f); a pair is (lower, upper)."""
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(f"{what} must be a float or a pair (lower, upper), got {factor!r}")
        lo, hi = float(factor[0]), float(factor[1])
    else:
        f = float(factor)
        if f < 0:
            raise ValueError(f"{what} as a single value must be >= 0, got {f}")
        lo, hi = -f, f
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{what} must satisfy lower <= upper (finite), got ({lo}, {hi})")
    if (low is not None and lo < low) or (high is not None and hi > high):
        raise ValueError(f"{what} values must be in [{low}, {high}], got ({lo}, {hi})")
    return lo, hi


class _Augmentation(_Base):
    """Base of the random layers: `is_augmentation` tells catdog.Model to run them in the data
    pipeline (training only) rather than in the engine graph."""

    is_augmentation = True

    def __init__(self, seed=None, name=None, **kwargs):
        super().__init__(name=name)
        self.seed = seed
        self.trainable = False

    def _cd_op(self) -> dict:  # the op dict csrc/binding/data.c parses
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def count_params(self) -> int:
        return 0

    def __call__(self, inputs, training=None):
        if isinstance(inputs, np.ndarray) or (hasattr(inputs, "__array__") and not _is_symbolic(inputs)):
            # Keras 3: a random layer called directly augments unless training=False
            from catdog._array import as_array

            return as_array(apply_layers([self], inputs,
                                         training=True if training is None else bool(training),
                                         seed=self.seed))
        return super().__call__(inputs, training=training)

    def get_config(self) -> dict:
        """Keras's config (catdog/saving/serialization.py)."""
        from catdog.saving import serialization

        return serialization.layer_config(self)["config"]


def _is_symbolic(x) -> bool:
    return type(x).__name__ == "KerasTensor"


def apply_layers(layers, images, training=True, seed=None, epoch=0, samples=None):
    """Run preprocessing layers on a NumPy batch (n, H, W, 3) or image (H, W, 3) in C.
    Eager calls without a seed draw a fresh one each call (Keras: a new augmentation each
    time) from catdog.random.eager_seed (the same sequence after the same set_seed); with a
    seed the result is reproducible."""
    from catdog import _engine

    x = np.asarray(images, dtype=np.float32)
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected images of shape (n, H, W, 3) or (H, W, 3), got {x.shape}")
    if seed is None:
        from catdog import random as _random

        seed = _random.eager_seed()
    if samples is None:
        samples = np.arange(len(x), dtype=np.int64)
    out = _engine.augment(np.ascontiguousarray(x), [l._cd_op() for l in layers], bool(training),
                          int(seed) & ((1 << 64) - 1), int(epoch), np.asarray(samples, np.int64))
    return out[0] if single else out


class RandomFlip(_Augmentation):
    """RandomFlip(mode="horizontal_and_vertical" | "horizontal" | "vertical", seed=None):
    each image flipped with probability 1/2 along each named axis."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name)
        self.mode = _check_choice(mode, ("horizontal", "vertical", "horizontal_and_vertical"), "mode")

    def _cd_op(self):
        return {"kind": "flip", "horizontal": int("horizontal" in self.mode),
                "vertical": int("vertical" in self.mode)}


class _Geometric(_Augmentation):
    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 name=None):
        super().__init__(seed=seed, name=name)
        self.fill_mode = _check_choice(fill_mode, _FILL_MODES, "fill_mode")
        self.interpolation = _check_choice(interpolation, _INTERPOLATIONS, "interpolation")
        self.fill_value = float(fill_value)

    def _common(self):
        return {"fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "fill_value": self.fill_value}


class RandomRotation(_Geometric):
    """RandomRotation(factor, fill_mode="reflect", interpolation="bilinear", seed=None,
    fill_value=0.0): angle uniform in [lower, upper] * 2*pi (factor f means (-f, f)),
    counter-clockwise for positive angles, about the image centre."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, name=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, name)
        self.factor = factor
        self.lower, self.upper = _factor_range(factor, "factor")

    def _cd_op(self):
        return {"kind": "rotation", "lo": self.lower, "hi": self.upper, **self._common()}


class RandomZoom(_Geometric):
    """RandomZoom(height_factor, width_factor=None, ...): zoom 1 + uniform[lower, upper] per
    axis (positive = zoom out, negative = zoom in); width_factor None keeps the aspect ratio
    (the height's zoom for both axes)."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, name=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, name)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_lower, self.height_upper = _factor_range(height_factor, "height_factor", -1.0)
        self.width_lower = self.width_upper = None
        if width_factor is not None:
            self.width_lower, self.width_upper = _factor_range(width_factor, "width_factor", -1.0)

    def _cd_op(self):
        op = {"kind": "zoom", "lo": self.height_lower, "hi": self.height_upper, **self._common()}
        if self.width_lower is not None:
            op.update(lo2=self.width_lower, hi2=self.width_upper, has_second=1)
        return op


class RandomTranslation(_Geometric):
    """RandomTranslation(height_factor, width_factor, ...): shift by uniform[lower, upper]
    times the image height (width); both factors in [-1, 1]."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, name=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, name)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_lower, self.height_upper = _factor_range(height_factor, "height_factor", -1.0, 1.0)
        self.width_lower, self.width_upper = _factor_range(width_factor, "width_factor", -1.0, 1.0)

    def _cd_op(self):
        return {"kind": "translation", "lo": self.height_lower, "hi": self.height_upper,
                "lo2": self.width_lower, "hi2": self.width_upper, "has_second": 1, **self._common()}


def _keras_factor(layer, factor, bounds):
    """keras/src/layers/preprocessing/image_preprocessing/base_image_preprocessing_layer.py
    `_set_factor`: a pair (checked against the bounds, then sorted), or one number f in the
    bounds giving (max(-|f|, bounds[0]), |f|): RandomContrast(f) is (0, f), RandomBrightness(f)
    is (-f, f)."""
    msg = (f"{type(layer).__name__} '{layer.name}': The `factor` argument should be a number "
           f"(or a list of two numbers) in the range [{bounds[0]}, {bounds[1]}]. Received: "
           f"factor={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(isinstance(f, (int, float)) and not isinstance(f, bool)
                                       and math.isfinite(f) for f in factor):
            raise ValueError(msg)
        if factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(msg)
        return tuple(float(f) for f in sorted(factor))
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor):
        raise ValueError(msg)
    if factor < bounds[0] or factor > bounds[1]:
        raise ValueError(msg)
    f = abs(float(factor))
    return (max(-f, float(bounds[0])), f)


def _value_range(layer, value_range, sort):
    if (not isinstance(value_range, (tuple, list)) or len(value_range) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in value_range)):
        raise ValueError(f"{type(layer).__name__} '{layer.name}': The `value_range` argument "
                         f"should be a list of two numbers. Received: value_range={value_range}")
    lo, hi = sorted(value_range) if sort else value_range
    if lo > hi:  # Keras would clip everything to `hi`
        raise ValueError(f"{type(layer).__name__} '{layer.name}': value_range must be (low, "
                         f"high), got {value_range}")
    return [lo, hi]


class RandomContrast(_Augmentation):
    """Keras's RandomContrast(factor, value_range=(0, 255), seed=None): per image one factor
    uniform in [1 - lower, 1 + upper], each channel (x - mean) * factor + mean (its mean over
    the image), clipped to value_range; identity at inference. factor as Keras 3 reads it: a
    pair (lower, upper) in [0, 1], or one number f meaning (0, f) (so RandomContrast(0.2) only
    raises contrast, as Keras 3.15 does, whatever its docstring says)."""

    def __init__(self, factor, value_range=(0, 255), seed=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name)
        self.factor = _keras_factor(self, factor, (0, 1))
        self.value_range = _value_range(self, value_range, sort=False)

    def _cd_op(self):
        return {"kind": "contrast", "lo": 1.0 - self.factor[0], "hi": 1.0 + self.factor[1],
                "lo2": float(self.value_range[0]), "hi2": float(self.value_range[1])}


class RandomBrightness(_Augmentation):
    """Keras's RandomBrightness(factor, value_range=(0, 255), seed=None): per image
    x + uniform[lower, upper] * (high - low) of the value range, clipped to it; identity at
    inference. factor: one number f in [-1, 1] meaning (-|f|, |f|), or a pair."""

    def __init__(self, factor, value_range=(0, 255), seed=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name)
        self.factor = _keras_factor(self, factor, (-1, 1))
        self.value_range = _value_range(self, value_range, sort=True)

    def _cd_op(self):
        lo, hi = self.value_range
        return {"kind": "brightness", "lo": self.factor[0], "hi": self.factor[1],
                "scale": float(hi - lo), "lo2": float(lo), "hi2": float(hi)}


class Rescaling(_RescalingBase):
    """Rescaling(scale, offset=0.0): x * scale + offset, in training and inference. In a model
    it runs in the engine graph; in the data pipeline it is the op "rescale". A list of
    scales (one per channel, Keras's broadcast over the last axis) makes a ChannelRescaling."""

    def __new__(cls, scale=1.0, *args, **kwargs):
        if cls is Rescaling and np.ndim(scale) == 1:
            return super().__new__(ChannelRescaling)
        return super().__new__(cls)

    def __init__(self, scale, offset=0.0, name=None, **kwargs):
        if _RescalingBase is _Base:
            super().__init__(name=name)
        else:
            super().__init__(scale, offset, name=name)
        self.scale, self.offset = float(scale), float(offset)

    def _cd_op(self):
        return {"kind": "rescale", "scale": self.scale, "offset": self.offset}

    def __call__(self, inputs, training=None):
        if isinstance(inputs, np.ndarray):
            from catdog._array import as_array

            return as_array(np.asarray(inputs, np.float32) * np.float32(self.scale)
                            + np.float32(self.offset))
        return super().__call__(inputs, training=training)

    def get_config(self) -> dict:
        """Keras's config (catdog/saving/serialization.py)."""
        from catdog.saving import serialization

        return serialization.layer_config(self)["config"]


class ChannelRescaling(Rescaling):
    """Keras's Rescaling with one scale per channel (a list; EfficientNet's "imagenet" stem
    scales by 1 / sqrt(std)): y = x * scale[k] + offset. In the engine a ChannelAffine node
    (csrc/nn/channel_affine.c, at most 8 channels: the product and the sum round as TF's);
    wider inputs, with offset 0 and positive scales, a Normalization node with mean 0 and
    standard deviation 1 / scale."""

    def __init__(self, scale, offset=0.0, name=None, **kwargs):
        scale = np.asarray(scale, np.float32)
        super().__init__(1.0, offset, name=name)
        if scale.ndim != 1 or not len(scale) or not np.all(np.isfinite(scale)):
            raise ValueError("per-channel Rescaling: a list of finite scales")
        self.scale = [float(s) for s in scale]
        self._channel_scale = scale

    def build(self, input_shape):
        super().build(input_shape)
        if input_shape[-1] != len(self.scale):
            raise ValueError(f"Rescaling '{self.name}': {len(self.scale)} scales for "
                             f"{input_shape[-1]} channels")

    def _cd_op(self):
        raise ValueError(f"Rescaling '{self.name}': one scale per channel runs in a model, not "
                         "in the data pipeline")

    def __call__(self, inputs, training=None):
        if isinstance(inputs, np.ndarray):
            from catdog._array import as_array

            return as_array(np.asarray(inputs, np.float32) * self._channel_scale
                            + np.float32(self.offset))
        return _Base.__call__(self, inputs, training=training)

    def add_to_graph(self, graph, ids):
        c = len(self.scale)
        if c <= 8:  # catdog.layers.operations.CHANNEL_AFFINE_MAX
            return graph.add_layer("ChannelAffine", self.name, ids, channels=c,
                                   source=tuple(range(c)), scale=tuple(self.scale),
                                   offset=(self.offset,) * c)
        if self.offset != 0.0 or not np.all(self._channel_scale > 0):
            raise ValueError(f"Rescaling '{self.name}': catdog scales more than 8 channels one "
                             "by one only with positive scales and offset 0")
        node = graph.add_layer("Normalization", self.name, ids, invert=0)
        std = 1.0 / self._channel_scale.astype(np.float64)
        graph.set_weight(node, 0, np.zeros(c, np.float32))
        graph.set_weight(node, 1, (std * std).astype(np.float32))
        return node


# Keras's class is Rescaling, whatever its scale: summaries, auto names ("rescaling_1") and
# error messages say so
ChannelRescaling.__name__ = ChannelRescaling.__qualname__ = "Rescaling"


def _batch_of(element):
    """keras/src/layers/preprocessing/normalization.py `_extract_batch`: x of (x, y[, w])."""
    return element[0] if isinstance(element, tuple) else element


class Normalization(_Base):
    """Keras's Normalization(axis=-1, mean=None, variance=None, invert=False)
    (keras/src/layers/preprocessing/normalization.py): per channel (the last axis)
    y = (x - mean) / max(sqrt(variance), 1e-7), or mean + x * max(sqrt(variance), 1e-7) with
    invert=True. Given mean and variance it has no weights (Keras keeps them as constants);
    otherwise `adapt(data)` sets its non-trainable weights mean, variance and count (Keras's
    order; count is kept for Keras's files and never used, a float here). Runs in the engine
    graph (nn/normalization.c) and passes gradients through. axis: -1 (or the channel axis
    by number), per channel; or None, one mean and variance for everything (weights of
    shape ()). Other axes are refused."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, name=None, **kwargs):
        super().__init__(name=name)
        axes = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        if axes != () and not (len(axes) == 1 and isinstance(axes[0], int)
                               and (axes[0] == -1 or axes[0] > 0)):
            raise ValueError(f"Normalization '{self.name}': catdog normalizes per channel "
                             f"(axis=-1) or everything at once (axis=None); got axis={axis!r}")
        self.axis, self.invert = axes, bool(invert)
        if (mean is None) != (variance is None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be "
                             f"set. Received: mean={mean} and variance={variance}")
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise ValueError("When setting values directly, `mean` and `variance` must have "
                                 f"the same shape. Received: mean shape {np.shape(mean)} and "
                                 f"variance shape {np.shape(variance)}")
            if len(np.shape(mean)) > len(self.axis):
                raise ValueError("The rank of `mean` must be less than or equal to the number of "
                                 f"axes ({len(self.axis)}). Received: mean shape "
                                 f"{np.shape(mean)} for axis {self.axis}")
        self.input_mean, self.input_variance = mean, variance

    def build(self, input_shape):
        super().build(input_shape)
        rank = len(self.input_shape) + 1  # Keras counts the batch axis
        a = self.axis[0] if self.axis else -1
        if a != -1 and a != rank - 1:
            raise ValueError(f"Normalization '{self.name}': catdog normalizes per channel (axis "
                             f"-1 or {rank - 1} for inputs of rank {rank}), got axis={a}")
        c = self.input_shape[-1] if self.axis else 1  # axis=None: one value, shape ()
        if c is None:
            raise ValueError(f"Normalization '{self.name}': the channel axis must have a known "
                             f"size, got input shape {self.input_shape}")
        shape = (c,) if self.axis else ()
        if self.input_mean is None:
            self._add_weight("mean", shape, 0.0, can_train=False)
            self._add_weight("variance", shape, 1.0, can_train=False)
            self._add_weight("count", (), 0.0, can_train=False)
            return
        try:
            mean = np.broadcast_to(np.asarray(self.input_mean, np.float32), shape)
            var = np.broadcast_to(np.asarray(self.input_variance, np.float32), shape)
        except ValueError:
            raise ValueError(f"Normalization '{self.name}': mean of shape "
                             f"{np.shape(self.input_mean)} does not broadcast to {c} channels"
                             ) from None
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
            raise ValueError(f"Normalization '{self.name}': mean and variance must be finite "
                             "and the variance >= 0")
        self._constants = (np.array(mean, np.float32), np.array(var, np.float32))

    def adapt(self, data):
        """Mean and variance per channel (axis=None: of everything) of `data`: a NumPy array
        (n, ..., c) (np.mean / np.var over every axis but the last, as Keras), or a dataset /
        iterable of batches (x or (x, y)), combined batch by batch as Keras's adapt does."""
        if self.input_mean is not None:
            raise ValueError(f"Normalization '{self.name}' was given mean and variance: it has "
                             "nothing to adapt")
        if isinstance(data, np.ndarray) or (hasattr(data, "__array__") and not hasattr(data, "__iter__")):
            data = np.asarray(data)
            self._adapt_shape(data.shape)
            reduce = tuple(range(data.ndim - (1 if self.axis else 0)))
            mean, var = np.mean(data, axis=reduce), np.var(data, axis=reduce)
        elif hasattr(data, "__iter__"):
            mean = var = None
            count = 0
            for element in data:
                batch = np.asarray(_batch_of(element), np.float32)
                if mean is None:
                    self._adapt_shape(batch.shape)
                elif batch.shape[-1] != self.input_shape[-1]:
                    raise ValueError(f"Normalization '{self.name}': adapt() yielded a batch of "
                                     f"shape {batch.shape}, expected {self.input_shape[-1]} "
                                     "channels")
                reduce = tuple(range(batch.ndim - (1 if self.axis else 0)))
                b_mean, b_var = batch.mean(axis=reduce), batch.var(axis=reduce)
                b_count = int(np.prod([batch.shape[d] for d in reduce]))
                if mean is None:
                    mean, var = np.zeros_like(b_mean), np.zeros_like(b_var)
                count += b_count
                w_new = float(b_count) / count
                w_old = 1.0 - w_new
                new_mean = mean * w_old + b_mean * w_new
                var = ((var + (mean - new_mean) ** 2) * w_old
                       + (b_var + (b_mean - new_mean) ** 2) * w_new)
                mean = new_mean
            if mean is None:
                raise ValueError(f"Normalization '{self.name}': adapt() received no batches")
        else:
            raise TypeError(f"Normalization '{self.name}': adapt() takes a NumPy array, a "
                            f"dataset or an iterable of batches, got {type(data).__name__}")
        self.set_weights([mean, var, np.zeros((), np.float32)])

    def _adapt_shape(self, shape):
        if len(shape) < 2:
            raise ValueError(f"Normalization '{self.name}': adapt() needs a batch (n, ..., "
                             f"channels), got shape {tuple(shape)}")
        if self.input_shape is None:
            self._build_per_sample(tuple(shape[1:]))
        elif shape[-1] != self.input_shape[-1]:
            raise ValueError(f"The layer was built with input_shape={self.input_shape}, but "
                             f"adapt() is being called with data with an incompatible shape, "
                             f"data.shape={tuple(shape)}")

    def add_to_graph(self, graph, ids):
        node = graph.add_layer("Normalization", self.name, ids, invert=int(self.invert),
                               scalar=int(not self.axis))
        if self.input_mean is not None:  # constants: set once, never a layer weight
            graph.set_weight(node, 0, self._constants[0])
            graph.set_weight(node, 1, self._constants[1])
        return node


_RESIZE_CODES = {"bilinear": 0, "nearest": 1}  # catdog.h cd_interpolation
_KERAS_RESIZE = ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5", "area")


class Resizing(_Base):
    """Keras's Resizing(height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
    pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0)
    (keras/src/layers/preprocessing/image_preprocessing/resizing.py): tf.image.resize's
    bilinear / nearest (half-pixel centres, no antialiasing) in the engine graph
    (nn/resizing.c), gradients included. Called on an image (H, W, C) or a batch it resizes at
    once; integer inputs come back rounded to their dtype, as Keras's."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, data_format=None, name=None, **kwargs):
        super().__init__(name=name)
        if interpolation not in _KERAS_RESIZE:
            raise ValueError(f"Resizing '{self.name}': Invalid value for argument "
                             f"`interpolation`. Expected of one {_KERAS_RESIZE}. Received: "
                             f"interpolation={interpolation}")
        if interpolation not in _RESIZE_CODES:
            raise ValueError(f"Resizing '{self.name}': interpolation={interpolation!r} is not "
                             "supported by catdog (bilinear or nearest)")
        if antialias:
            raise ValueError(f"Resizing '{self.name}': antialias=True is not supported by catdog")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Resizing '{self.name}': catdog runs channels_last only")
        if fill_mode != "constant":
            raise ValueError(f"Resizing '{self.name}': Invalid value for argument `fill_mode`. "
                             f"Only `'constant'` is supported. Received: fill_mode={fill_mode}")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(f"Resizing '{self.name}': Only one of `pad_to_aspect_ratio` & "
                             "`crop_to_aspect_ratio` can be `True`.")
        for v in (height, width):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Resizing '{self.name}': height and width must be positive "
                                 f"integers, got ({height}, {width})")
        self.height, self.width = int(height), int(width)
        self.interpolation, self.fill_mode = interpolation, fill_mode
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_value, self.antialias = float(fill_value), False

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Resizing '{self.name}' resizes images (H, W, C), got input "
                             f"shape {tuple(input_shape)}")
        super().build(input_shape)

    def compute_output_shape(self, s):
        return (self.height, self.width, s[-1])

    def __call__(self, inputs, training=None):
        if isinstance(inputs, np.ndarray) or (hasattr(inputs, "__array__") and not _is_symbolic(inputs)):
            from catdog._array import as_array

            x = np.asarray(inputs)
            single = x.ndim == 3
            out = super().__call__(np.asarray(x[None] if single else x, np.float32), training)
            out = np.asarray(out)
            if np.issubdtype(x.dtype, np.integer):  # Keras: round, saturate to the dtype
                info = np.iinfo(x.dtype)
                out = np.clip(np.round(out), info.min, info.max).astype(x.dtype)
            return as_array(out[0] if single else out)
        return super().__call__(inputs, training=training)

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Resizing", self.name, ids, size=(self.height, self.width),
                               interpolation=_RESIZE_CODES[self.interpolation],
                               crop=int(self.crop_to_aspect_ratio),
                               pad=int(self.pad_to_aspect_ratio), fill_value=self.fill_value)


__all__ = ["RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "Rescaling",
           "Normalization", "Resizing", "RandomContrast", "RandomBrightness", "apply_layers"]
