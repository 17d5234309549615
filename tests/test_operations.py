"""Arithmetic on KerasTensors (graph operations, not layers), Multiply with a per-channel gate and
GlobalAveragePooling2D(keepdims=True), against Keras 3: a squeeze-and-excite block as
keras/src/applications/mobilenet_v3.py writes it (fixtures by
tests/fixtures/make_ops_fixtures.py, TensorFlow 2.21 / Keras 3.15)."""
import json
from pathlib import Path

import numpy as np
import pytest

import catdog
from catdog import layers
from conftest import assert_close_rel

IO = np.load(Path(__file__).parent / "fixtures" / "keras" / "ops_model.npz")


def set_fixture_weights(model, prefix=""):
    for layer in model.layers:
        n = len(layer.get_weights())
        if n:
            layer.set_weights([IO[f"{prefix}w/{layer.name}/{i}"] for i in range(n)])
    return model


def assert_gradients_match(model, prefix=""):
    """Every trainable weight's gradient of the fixture's loss against Keras's at 1e-5."""
    grads = model.gradients(IO[prefix + "x"], IO[prefix + "y"])
    want = {k[len(prefix + "grad/"):]: IO[k] for k in IO.files if k.startswith(prefix + "grad/")}
    names = {f"{layer.name}/{i}": f"{layer.name}/{w}" for layer in model.layers
             for i, w in enumerate(n for n, _, _ in layer._weights)}
    assert sorted(names[k] for k in want) == sorted(grads)
    for k, v in want.items():
        assert_close_rel(grads[names[k]], v, 1e-5, f"grad {prefix}{k}")
    return grads


def build():
    """make_ops_fixtures.py's build(), with catdog for keras."""
    inputs = catdog.Input((6, 6, 8))
    x = layers.Conv2D(8, 1, name="conv")(inputs)
    s = layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    s = layers.Conv2D(4, 1, padding="same", name="se_conv")(s)
    s = layers.ReLU(name="se_relu")(s)
    s = layers.Conv2D(8, 1, padding="same", name="se_conv_1")(s)
    s = layers.ReLU(6.0, name="se_relu6")(s + 3.0) * (1.0 / 6.0)
    y = layers.Multiply(name="se_mul")([x, s])
    y = y - x * 0.5
    y = 1.0 - (-y / 2.0)
    out = layers.Dense(1, name="head")(layers.GlobalAveragePooling2D(name="pool")(y))
    return set_fixture_weights(catdog.Model(inputs, out))


def test_operations_are_not_layers():
    model = build()
    keras_names = json.loads(str(IO["layers"]))
    assert isinstance(model.layers[0], layers.InputLayer) and keras_names[0] == "input_layer"
    assert [layer.name for layer in model.layers[1:]] == keras_names[1:]
    assert model.get_layer("se_pool").output_shape == (1, 1, 8)


def test_squeeze_excite_and_arithmetic_match_keras():
    model = build()
    x, y = IO["x"], IO["y"]
    assert_close_rel(model.predict_on_batch(x), IO["logits"], 1e-5, "logits")
    assert_gradients_match(model)
    model.compile(loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    assert abs(model.evaluate(x, y, verbose=0) - float(IO["loss"])) <= 1e-5


def test_multiply_refuses_shapes_it_cannot_broadcast():
    a, b = catdog.Input((4, 4, 8)), catdog.Input((4, 4, 3))
    with pytest.raises(ValueError, match="cannot multiply shapes"):
        layers.Multiply()([a, b])
    with pytest.raises(NotImplementedError, match="divided by a tensor"):
        _ = 1.0 / a
    with pytest.raises(ValueError, match="of one shape"):
        _ = a + b


def build_merge():
    """make_ops_fixtures.py's build_merge(), with catdog for keras."""
    inputs = catdog.Input((5, 5, 6))
    a = layers.Conv2D(6, 3, padding="same", name="c1")(inputs)
    b = layers.Conv2D(6, 1, name="c2")(inputs)
    m = layers.average([layers.maximum([a, b]), layers.minimum([layers.subtract([a, b]), a])])
    m = layers.multiply([layers.add([m, b]), a])
    g = layers.Reshape((6,), name="flat_max")(layers.GlobalMaxPooling2D(keepdims=True, name="gmp")(m))
    r = layers.GlobalAveragePooling2D(name="gap")(layers.Reshape((-1, 1, 6), name="column")(m))
    out = layers.Dense(1, name="head")(layers.add([g, r]))
    return set_fixture_weights(catdog.Model(inputs, out), "merge/")


def test_merging_layers_reshape_and_global_max_pooling_match_keras():
    """keras/src/layers/merging/*.py, reshaping/reshape.py, pooling/global_max_pooling2d.py."""
    model = build_merge()
    assert model.get_layer("column").output_shape == (25, 1, 6)
    keras_names = json.loads(str(IO["merge/layers"]))
    assert len(model.layers) == len(keras_names)
    assert_close_rel(model.predict_on_batch(IO["merge/x"]), IO["merge/logits"], 1e-5, "logits")
    assert_gradients_match(model, "merge/")


def test_reshape_refuses_a_size_that_does_not_fit():
    with pytest.raises(ValueError, match="cannot reshape"):
        layers.Reshape((7,))(catdog.Input((2, 2, 3)))


def test_separable_conv_matches_keras():
    """keras/src/layers/convolutional/separable_conv2d.py: one layer, two engine nodes, its
    weights (depthwise_kernel, pointwise_kernel, bias) mapped onto them."""
    inputs = catdog.Input((7, 7, 4))
    x = layers.SeparableConv2D(6, 3, strides=2, padding="same", activation="relu", name="sep1")(inputs)
    x = layers.SeparableConv2D(5, 3, use_bias=False, name="sep2")(x)
    model = set_fixture_weights(catdog.Model(
        inputs, layers.Dense(1, name="head")(layers.GlobalAveragePooling2D(name="gap")(x))), "sep/")
    assert [w for w, _, _ in model.get_layer("sep1")._weights] == ["depthwise_kernel", "pointwise_kernel", "bias"]
    assert model.get_layer("sep1").count_params() == 3 * 3 * 4 + 4 * 6 + 6
    x, y = IO["sep/x"], IO["sep/y"]
    assert_close_rel(model.predict_on_batch(x), IO["sep/logits"], 1e-5, "logits")
    grads = assert_gradients_match(model, "sep/")
    # trained weights come back from both engine nodes
    model.compile(optimizer=catdog.optimizers.SGD(0.1), loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    before = model.get_layer("sep1").get_weights()
    model.train_on_batch(x, y)
    after = model.get_layer("sep1").get_weights()
    for b, a, g in zip(before, after, (grads[f"sep1/{w}"] for w in ("depthwise_kernel", "pointwise_kernel", "bias"))):
        np.testing.assert_allclose(a, b - 0.1 * g, rtol=1e-4, atol=1e-6)


def test_dropout_noise_shape_drops_whole_channels():
    """keras/src/layers/regularization/dropout.py: noise_shape=(None, 1, 1, C) shares one draw
    per channel over the positions; the kept values are scaled by 1 / (1 - rate)."""
    inputs = catdog.Input((4, 5, 64))
    model = catdog.Model(inputs, layers.Dropout(0.5, noise_shape=(None, 1, 1, 64))(inputs))
    x = np.ones((3, 4, 5, 64), np.float32)
    catdog.random.set_seed(3)
    y = model(x, training=True)
    per_channel = y.reshape(3, 20, 64)
    assert np.all(per_channel == per_channel[:, :1])  # one value per (sample, channel)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.3 < (y == 0).mean() < 0.7
    assert not np.array_equal(per_channel[0, 0], per_channel[1, 0])  # samples differ
    np.testing.assert_array_equal(model(x, training=False), x)
    with pytest.raises(ValueError, match="does not fit"):
        layers.Dropout(0.5, noise_shape=(None, 2, 1, 64))(inputs)


def build_nary():
    """make_ops_fixtures.py's build_nary(), with catdog for keras."""
    inputs = catdog.Input((4, 4, 3))
    a = layers.Conv2D(3, 3, padding="same", name="n1")(inputs)
    b = layers.Conv2D(3, 1, name="n2")(inputs)
    c = layers.Conv2D(5, 1, name="n3")(inputs)
    s = layers.Add(name="add3")([a, b, a])
    mx = layers.Maximum(name="max3")([a, b, s])
    mn = layers.minimum([b, a, b], name="min3")
    av = layers.Average(name="avg3")([mx, mn, a])
    ch = layers.Concatenate(name="cat_c")([s, av, c, a])
    h = layers.concatenate([ch, ch], axis=1, name="cat_h")
    w = layers.Concatenate(axis=-2, name="cat_w")([h, layers.Conv2D(14, 1, name="n4")(h)])
    v = layers.concatenate([layers.GlobalAveragePooling2D(name="gap")(w),
                            layers.GlobalMaxPooling2D(name="gmp")(ch)], name="cat_v")
    out = layers.Dense(1, name="head")(v)
    return set_fixture_weights(catdog.Model(inputs, out), "nary/")


def test_nodes_of_many_inputs_match_keras():
    """keras/src/layers/merging/{concatenate,add,maximum,minimum,average}.py: Concatenate on
    each NHWC axis and of vectors, the others folding left to right over three inputs (one
    repeated: ties route the gradient as TF's maximum/minimum do, x + x adds both)."""
    model = build_nary()
    assert model.get_layer("cat_c").output_shape == (4, 4, 14)
    assert model.get_layer("cat_h").output_shape == (8, 4, 14)
    assert model.get_layer("cat_w").output_shape == (8, 8, 14)
    assert model.get_layer("cat_v").output_shape == (28,)
    assert [l.name for l in model.layers][1:] == json.loads(str(IO["nary/layers"]))[1:]
    assert_close_rel(model.predict_on_batch(IO["nary/x"]), IO["nary/logits"], 1e-5, "logits")
    assert_gradients_match(model, "nary/")


def test_nodes_of_many_inputs_finite_differences():
    """Central differences of a scalar of the output against the input gradient the engine
    gives through Concatenate (each axis), Add, Maximum, Minimum and Average of three."""
    model = build_nary()
    rng = np.random.default_rng(5)
    x = IO["nary/x"].astype(np.float64)
    r = rng.normal(size=(3, 1))

    def f(xv):
        g = model._ensure_graph()  # syncs the weights just set
        g.forward(xv.astype(np.float32), False)
        return float(np.sum(g.get_output(g.num_layers() - 1, len(xv)).astype(np.float64) * r))

    grads = model.gradients(x.astype(np.float32), output_gradient=r.astype(np.float32), training=False)
    for key in ("n1/kernel", "n3/bias", "n4/kernel"):
        lname, wname = key.split("/")
        layer = model.get_layer(lname)
        k = [n for n, _, _ in layer._weights].index(wname)
        base = layer.get_weights()
        for fi in rng.choice(base[k].size, size=min(6, base[k].size), replace=False):
            vals = []
            for sign in (1, -1):
                ws = [w.copy() for w in base]
                ws[k].flat[fi] += sign * 1e-2
                layer.set_weights(ws)
                vals.append(f(x))
            layer.set_weights(base)
            numeric = (vals[0] - vals[1]) / 2e-2
            assert abs(numeric - grads[key].flat[fi]) <= 2e-2 * max(1.0, abs(numeric)), key


def test_merging_layers_refuse_as_keras_does():
    a, b = catdog.Input((2, 2, 3)), catdog.Input((2, 2, 3))
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()([a, b, a])
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate()([a, catdog.Input((3, 2, 3))])
    with pytest.raises(ValueError, match="batch axis"):
        layers.Concatenate(axis=0)([a, b])
