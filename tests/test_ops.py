"""catdog.ops: Keras 3's names and semantics (values, dtypes) on NumPy arrays. The dtype
rules were read off keras.ops 3.15 on the TensorFlow backend."""
import numpy as np
import pytest

import catdog
from catdog import ops


def test_sigmoid_is_stable_and_keeps_float_dtypes():
    x = np.array([-1000.0, -2.0, 0.0, 3.0, 1000.0], np.float32)
    s = ops.sigmoid(x)
    assert s.dtype == np.float32
    with np.errstate(over="ignore"):  # the reference itself overflows to inf at -1000
        np.testing.assert_allclose(s, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6)
    assert np.all(np.isfinite(s)) and s[0] == 0.0 and s[-1] == 1.0
    assert ops.sigmoid(x.astype(np.float64)).dtype == np.float64
    assert ops.sigmoid(np.array([1, 2])).dtype == np.float32  # Keras/TF would refuse ints
    assert ops.nn.sigmoid is ops.sigmoid


def test_softmax_last_axis_by_default():
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    e = np.exp(x)
    np.testing.assert_allclose(ops.softmax(x), e / e.sum(-1, keepdims=True))
    np.testing.assert_allclose(ops.softmax(x, axis=0), e / e.sum(0, keepdims=True))
    big = ops.softmax(np.array([1000.0, 1000.0], np.float32))
    np.testing.assert_allclose(big, [0.5, 0.5])
    assert big.dtype == np.float32


def test_where_dtypes_follow_keras():
    p = np.array([0.2, 0.7, 0.5], np.float32)
    w = ops.where(p < 0.5, 0, 1)  # the tutorial's cell
    assert w.dtype == np.int32 and w.tolist() == [0, 1, 1]
    assert w.numpy().tolist() == [0, 1, 1] and type(w.numpy()) is np.ndarray
    assert ops.where(p < 0.5, p, 0).dtype == np.float32
    assert ops.where(p < 0.5, p.astype(np.float64), 0).dtype == np.float64
    assert ops.where(p < 0.5, np.arange(3), 0.5).dtype == np.float32
    assert ops.where(p < 0.5, 1.0, 0).dtype == np.float32
    idx = ops.where(np.array([[True, False], [False, True]]))
    assert [i.tolist() for i in idx] == [[0, 1], [0, 1]] and idx[0].dtype == np.int32
    with pytest.raises(ValueError):
        ops.where(p < 0.5, 1)


def test_shape_ops_argmax_cast_convert():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert ops.expand_dims(x, 0).shape == (1, 2, 3)
    assert ops.expand_dims(x, -1).shape == (2, 3, 1)
    assert ops.squeeze(np.zeros((1, 3, 1))).shape == (3,)
    assert ops.squeeze(np.zeros((1, 3, 1)), axis=-1).shape == (1, 3)
    with pytest.raises(ValueError, match="length is not 1"):
        ops.squeeze(np.zeros((2, 3)), axis=0)
    a = ops.argmax(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]]), axis=-1)
    assert a.dtype == np.int32 and a.tolist() == [1, 0]
    assert int(ops.argmax(np.array([3.0, 9.0, 1.0]))) == 1
    c = ops.cast(np.array([1.7, -1.7]), "int32")
    assert c.dtype == np.int32 and c.tolist() == [1, -1]
    assert ops.cast(x, np.uint8).dtype == np.uint8
    n = ops.convert_to_numpy(ops.sigmoid(x))
    assert type(n) is np.ndarray
    assert type(ops.convert_to_numpy([1, 2])) is np.ndarray
    t = ops.convert_to_tensor([1, 2], dtype="float32")
    assert t.dtype == np.float32 and t.numpy().tolist() == [1.0, 2.0]


def test_ops_is_the_package_attribute():
    assert catdog.ops is ops
