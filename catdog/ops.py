"""catdog.ops: the few Keras 3 operations (``keras.ops``) a notebook writes in place of ``tf.``
calls, on NumPy arrays, with Keras 3's names and semantics.

The tutorial's last cell becomes::

    predictions = catdog.ops.sigmoid(model.predict_on_batch(image_batch).flatten())
    predictions = catdog.ops.where(predictions < 0.5, 0, 1)
    print(predictions.numpy())

Results are catdog arrays: NumPy arrays that also answer ``.numpy()`` as TensorFlow tensors
do (``convert_to_numpy`` gives a plain ndarray). dtypes follow Keras 3: float inputs keep
their dtype, integer/bool inputs of float operations become float32, Python ints and floats
mixed into ``where`` count as int32 / float32 ("weak" types), index results (``argmax``,
``where(condition)``) are int32. One difference: Keras 3 on TensorFlow refuses ``sigmoid`` /
``softmax`` of an integer tensor; catdog computes them in float32.

This is not a tensor framework: there is no autodiff, no device and no graph here; the model
itself runs on catdog's engine.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from catdog._array import Array, as_array

__all__ = ["sigmoid", "softmax", "where", "stack", "expand_dims", "squeeze", "argmax", "cast",
           "convert_to_numpy", "convert_to_tensor", "nn"]


def _float(x) -> np.ndarray:
    """x as an array; integers and bools become float32 (Keras's floatx)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    return x


def sigmoid(x) -> Array:
    """1 / (1 + exp(-x)), elementwise, without overflow for large |x|."""
    x = _float(x)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return as_array(np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False))


def softmax(x, axis=-1) -> Array:
    """exp(x) / sum(exp(x)) along `axis` (default the last, as Keras), max-shifted."""
    x = _float(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return as_array(e / np.sum(e, axis=axis, keepdims=True))


_KIND_ORDER = {"b": 0, "u": 1, "i": 1, "f": 2}
_WEAK_DTYPE = {0: np.bool_, 1: np.int32, 2: np.float32}


def _is_weak(v) -> bool:
    """A Python bool/int/float (not a NumPy scalar or array): Keras 3 gives it no width."""
    return isinstance(v, (bool, int, float)) and not isinstance(v, np.generic)


def _result_dtype(a, b):
    """Keras 3's result type of two operands: a Python scalar takes the array's dtype when its
    kind fits (an int into a float array), else the 32-bit type of its own kind; two Python
    scalars give bool / int32 / float32; two arrays NumPy's promotion."""
    wa, wb = _is_weak(a), _is_weak(b)
    if not (wa or wb):
        return np.result_type(np.asarray(a), np.asarray(b))
    ka = _KIND_ORDER[np.asarray(a).dtype.kind]
    kb = _KIND_ORDER[np.asarray(b).dtype.kind]
    if wa and wb:
        return np.dtype(_WEAK_DTYPE[max(ka, kb)])
    arr, k_arr, k_weak = (np.asarray(b), kb, ka) if wa else (np.asarray(a), ka, kb)
    return arr.dtype if k_weak <= k_arr else np.dtype(_WEAK_DTYPE[k_weak])


def where(condition, x1=None, x2=None):
    """x1 where condition holds, else x2 (broadcast). With only the condition: the indices
    where it holds, one int32 array per axis (a list, as Keras 3)."""
    condition = np.asarray(condition)
    if x1 is None and x2 is None:
        return [as_array(i.astype(np.int32)) for i in np.nonzero(condition)]
    if x1 is None or x2 is None:
        raise ValueError("catdog.ops.where takes both x1 and x2, or neither")
    dtype = _result_dtype(x1, x2)
    return as_array(np.where(condition.astype(bool), x1, x2).astype(dtype, copy=False))


def stack(x, axis=0):
    """Arrays joined along a new axis. In a model, the channels x[..., i] of one image
    tensor restacked along axis -1 (Keras's "caffe" RGB -> BGR): an operation of the model
    (catdog.layers.operations.stack)."""
    from catdog.layers.operations import ChannelSlice, stack as stack_channels

    x = list(x)
    if any(isinstance(v, ChannelSlice) for v in x):
        return stack_channels(x, axis=axis)
    return as_array(np.stack([np.asarray(v) for v in x], axis=axis))


def expand_dims(x, axis) -> Array:
    """x with a new axis of length 1 at `axis`."""
    return as_array(np.expand_dims(np.asarray(x), axis))


def squeeze(x, axis=None) -> Array:
    """x without its length-1 axes (or only `axis`, which must have length 1)."""
    x = np.asarray(x)
    if axis is not None:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"cannot squeeze axis {a} of shape {x.shape}: its length is not 1")
    return as_array(np.squeeze(x, axis=axis))


def argmax(x, axis=None, keepdims=False) -> Array:
    """Index of the largest value along `axis` (all values flattened if None), int32."""
    return as_array(np.argmax(np.asarray(x), axis=axis, keepdims=keepdims).astype(np.int32))


def cast(x, dtype) -> Array:
    """x converted to `dtype` ("float32", "int32", "uint8", ... or a NumPy dtype); float to int
    truncates toward zero, as tf.cast."""
    return as_array(np.asarray(x).astype(np.dtype(dtype)))


def convert_to_numpy(x) -> np.ndarray:
    """A plain NumPy ndarray (no copy when x already is one)."""
    return np.asarray(x).view(np.ndarray) if isinstance(x, np.ndarray) else np.asarray(x)


def convert_to_tensor(x, dtype=None) -> Array:
    """x as a catdog array (the type catdog returns where Keras returns a tensor)."""
    x = np.asarray(x)
    return as_array(x if dtype is None else x.astype(np.dtype(dtype)))


# keras.ops.nn.sigmoid / softmax (the namespace where tf.nn.sigmoid users look)
nn = SimpleNamespace(sigmoid=sigmoid, softmax=softmax)
