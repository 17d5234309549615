"""The engine graph skips re-reading every layer when nothing it mirrors changed (a batch-1
predict loop); each kind of change must still reach it: weights set in Python, `trainable`
flipped on a layer or a nested model, a model that shares the layers and trained, a
structure change. Also Keras's batch-first form of `layer.build`."""
import numpy as np
import pytest

import catdog
from catdog import layers
from test_notebook_habits import arrays, compile_, make_base, model_cell


def test_weights_set_in_python_reach_a_synced_graph():
    model = model_cell(make_base())
    x, _ = arrays(4)
    first = model.predict_on_batch(x)
    assert np.array_equal(model.predict_on_batch(x), first)  # the fast path: same bits
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 2, bias + 1])
    moved = model.predict_on_batch(x)
    assert not np.allclose(moved, first)
    head_in = (first - bias)  # logits are linear in the Dense weights: check the new value
    np.testing.assert_allclose(moved, 2 * head_in + bias + 1, rtol=1e-4, atol=1e-4)


def test_trainable_flipped_after_predict_is_honoured_by_fit():
    base = make_base()
    model = model_cell(base)
    compile_(model)
    x, y = arrays(8)
    model.predict_on_batch(x)  # graph synced with the base frozen
    base.trainable = True
    conv = next(l for l in base.layers if l.weights)
    before = conv.get_weights()[0].copy()
    model.train_on_batch(x, y)
    assert not np.array_equal(conv.get_weights()[0], before), "the unfrozen base did not train"
    base.trainable = False
    after_one = conv.get_weights()[0].copy()
    model.train_on_batch(x, y)
    assert np.array_equal(conv.get_weights()[0], after_one), "the refrozen base trained"


def test_a_model_sharing_the_base_sees_what_the_other_trained():
    base = make_base()
    base.trainable = True
    a, b = model_cell(base), model_cell(base)
    x, y = arrays(8)
    b.predict_on_batch(x)  # b's graph synced before a trains
    compile_(a)
    a.train_on_batch(x, y)
    a.train_on_batch(x, y)
    b.layers[-1].set_weights(a.layers[-1].get_weights())  # same head too
    np.testing.assert_array_equal(b.predict_on_batch(x), a.predict_on_batch(x))


def test_repeated_predict_after_training_keeps_the_trained_weights():
    model = model_cell(make_base())
    compile_(model)
    x, y = arrays(8)
    model.train_on_batch(x, y)
    p1 = model.predict_on_batch(x)
    w = model.layers[-1].get_weights()  # reading pulls the graph's weights into the layer
    assert np.array_equal(model.predict_on_batch(x), p1)
    model.layers[-1].set_weights(w)  # same values pushed back: same output
    assert np.array_equal(model.predict_on_batch(x), p1)


def test_a_layer_added_after_predict_changes_the_output():
    model = catdog.Sequential([catdog.Input((4,)), layers.Dense(2)])
    x = np.ones((3, 4), np.float32)
    assert model.predict_on_batch(x).shape == (3, 2)
    model.add(layers.Dense(5))
    out = model.predict_on_batch(x)
    kernel, bias = model.layers[-1].get_weights()
    np.testing.assert_allclose(out, model.layers[0](x) @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_layer_build_takes_keras_batch_first_shapes():
    d = layers.Dense(3)
    d.build((None, 5))  # Keras's form
    assert d.get_weights()[0].shape == (5, 3)
    e = layers.Dense(3)
    e.build((5,))  # catdog's per-sample form
    assert e.get_weights()[0].shape == (5, 3)
    with pytest.raises(ValueError, match=r"flat features per sample.*\(None, features\).*"
                                         r"GlobalAveragePooling2D"):
        layers.Dense(3).build((None, 5, 4))
    c = layers.Conv2D(4, 3)
    c.build((None, 8, 8, 3))
    assert c.get_weights()[0].shape == (3, 3, 3, 4) and c.output_shape == (6, 6, 4)
    free = catdog.Input((None, None, 3))  # free spatial dims are not a batch dimension
    assert free.shape == (None, None, 3)


def test_free_spatial_sizes_build_symbolically_and_run_at_any_size():
    inputs = catdog.Input((None, None, 3))
    x = layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.DepthwiseConv2D(3, padding="valid")(x)
    x = layers.MaxPooling2D(2)(x)
    assert x.shape == (None, None, 4)
    model = catdog.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling2D()(x)))
    for size in [(40, 40), (41, 37)]:  # a graph per size (tests/test_free_input_size.py)
        assert model.predict(np.zeros((1, *size, 3), np.float32)).shape == (1, 1)
