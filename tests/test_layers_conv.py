"""Conv2D dilation_rate and groups, DepthwiseConv2D of any kernel size (5x5, stride 1 / 2, same /
valid, bias, activation), depth_multiplier and dilation, SeparableConv2D with both: forward,
input and weight gradients against Keras 3.15 / TF 2.21 (tests/fixtures/make_layers_fixtures.py
conv; rules from keras/src/layers/convolutional/base_conv.py and base_depthwise_conv.py), weight
shapes and counts as Keras's, finite differences, and such convolutions kept out of fused blocks
(nn/conv2d.c conv_flags)."""
import json

import numpy as np
import pytest

import catdog
from catdog import _engine
from catdog import layers as L
from conftest import assert_close_rel
from layers_common import finite_difference_input_gradient, input_gradient, load, probe_model

IO = load("conv")
# the fixture script's CONV_CASES, spelled for catdog
CASES = {
    "dilated_same": ((9, 9, 3), lambda: L.Conv2D(4, 3, padding="same", dilation_rate=2,
                                                 activation="relu", name="conv")),
    "dilated_valid_2x3": ((10, 11, 3), lambda: L.Conv2D(5, (3, 2), dilation_rate=(2, 3),
                                                        name="conv")),
    "groups_stride2": ((8, 8, 6), lambda: L.Conv2D(9, 3, strides=2, padding="same", groups=3,
                                                   name="conv")),
    "groups_dilated": ((9, 9, 4), lambda: L.Conv2D(4, 3, padding="same", groups=2,
                                                   dilation_rate=2, use_bias=False, name="conv")),
    "dw5_s1_same": ((9, 9, 3), lambda: L.DepthwiseConv2D(5, padding="same", activation="swish",
                                                         name="conv")),
    "dw5_s2_same": ((9, 9, 3), lambda: L.DepthwiseConv2D(5, strides=2, padding="same",
                                                         name="conv")),
    "dw5_s1_valid": ((9, 9, 3), lambda: L.DepthwiseConv2D(5, name="conv")),
    "dw5_s2_valid": ((10, 10, 3), lambda: L.DepthwiseConv2D(5, strides=2, activation="relu6",
                                                            name="conv")),
    "dw_multiplier": ((7, 7, 3), lambda: L.DepthwiseConv2D(3, padding="same", depth_multiplier=2,
                                                           name="conv")),
    "dw_dilated": ((9, 9, 3), lambda: L.DepthwiseConv2D(3, padding="same", dilation_rate=2,
                                                        use_bias=False, name="conv")),
    "sep_multiplier_dilated": ((9, 9, 3), lambda: L.SeparableConv2D(
        4, 3, padding="same", depth_multiplier=2, dilation_rate=2, activation="tanh",
        name="conv")),
}


def case_model(case):
    shape, make = CASES[case]
    layer = make()
    model = probe_model(layer, shape)
    layer.set_weights([IO[f"w/{case}/conv/{i}"] for i in range(len(layer._weights))])
    return model, layer


@pytest.mark.parametrize("case", list(CASES))
def test_matches_keras(case):
    model, layer = case_model(case)
    x, dy = IO[f"x/{case}"], IO[f"dy/{case}"]
    assert layer.count_params() == int(IO[f"params/{case}"])
    assert [w.shape for w in layer.get_weights()] == \
        [IO[f"w/{case}/conv/{i}"].shape for i in range(len(layer._weights))]
    assert model.output_shape == IO[f"y/{case}"].shape[1:]
    assert_close_rel(model.predict_on_batch(x), IO[f"y/{case}"], 1e-5, "forward")
    assert_close_rel(input_gradient(model, x, dy), IO[f"dx/{case}"], 1e-5, "input gradient")
    grads = model.gradients(x, output_gradient=dy)
    want = [IO[k] for k in IO.files if k.startswith(f"grad/{case}/")]  # Keras's weight order
    got = [grads[f"conv/{n}"] for n, _, _ in layer._weights]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_close_rel(g, w, 1e-5, "weight gradient")


@pytest.mark.parametrize("case", list(CASES))
def test_config_as_keras_writes_it(case):
    _, layer = case_model(case)
    want = json.loads(str(IO[f"config/{case}"]))
    got = layer.get_config()
    for key in ("kernel_size", "strides", "padding", "dilation_rate", "groups",
                "depth_multiplier", "filters", "use_bias", "activation"):
        if key in want:
            assert got[key] == want[key], key


@pytest.mark.parametrize("case", ["groups_dilated", "dw_multiplier", "dw5_s2_same",
                                  "sep_multiplier_dilated"])
def test_gradients_by_finite_differences(case):
    model, layer = case_model(case)
    rng = np.random.default_rng(4)
    x, dy = IO[f"x/{case}"][:1], IO[f"dy/{case}"][:1]
    got = input_gradient(model, x, dy)
    idx = [np.unravel_index(i, x.shape) for i in rng.choice(x.size, 12, replace=False)]
    for i, want in finite_difference_input_gradient(model, x, dy, 1e-2, idx).items():
        assert abs(got[i] - want) <= 1e-2 * max(1.0, abs(want)), (i, got[i], want)
    grads = model.gradients(x, output_gradient=dy)
    base = layer.get_weights()
    for k, (name, _, _) in enumerate(layer._weights):
        for fi in rng.choice(base[k].size, min(5, base[k].size), replace=False):
            vals = []
            for h in (1e-2, -1e-2):
                ws = [w.copy() for w in base]
                ws[k].flat[fi] += h
                layer.set_weights(ws)
                vals.append(float(np.sum(model.predict_on_batch(x).astype(np.float64) * dy)))
            layer.set_weights(base)
            want = (vals[0] - vals[1]) / 2e-2
            assert abs(grads[f"conv/{name}"].flat[fi] - want) <= 1e-2 * max(1.0, abs(want))


def test_dilated_grouped_and_multiplied_convs_run_unfused():
    """Conv -> BN -> ReLU with a dilated / grouped / depth-multiplied conv: the planner leaves
    them out of fused blocks (the fused path builds plain convolutions only), inference and
    fine-tuning; a plain conv and a 5x5 stride-2 depthwise conv of the same model still fuse.
    Results equal layer by layer."""
    catdog.random.set_seed(2)
    inputs = catdog.Input((9, 9, 4))
    x = inputs
    for i, conv in enumerate([L.Conv2D(4, 3, padding="same", use_bias=False, name="plain"),
                              L.Conv2D(4, 3, padding="same", dilation_rate=2, use_bias=False,
                                       name="dilated"),
                              L.Conv2D(4, 3, padding="same", groups=2, use_bias=False,
                                       name="grouped"),
                              L.DepthwiseConv2D(3, padding="same", depth_multiplier=2,
                                                use_bias=False, name="multiplied"),
                              L.DepthwiseConv2D(5, strides=2, padding="same", use_bias=False,
                                                name="dw5")]):
        x = L.ReLU(6.0, name=f"relu{i}")(L.BatchNormalization(name=f"bn{i}")(conv(x)))
    base = catdog.Model(inputs, x)
    outer_in = catdog.Input((9, 9, 4))
    model = catdog.Model(outer_in, base(outer_in, training=False))
    rng = np.random.default_rng(0)
    for layer in base.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c),
                               rng.normal(0, 0.3, c), rng.uniform(0.5, 1.5, c)])
    xb = rng.normal(size=(3, 9, 9, 4)).astype(np.float32)
    dy = rng.normal(size=(3, 5, 5, 8)).astype(np.float32)
    g = model._ensure_graph()
    want_y = (g.forward(xb, False, _engine.KEEP_ALL), g.get_output(g.num_layers() - 1, 3))[1]
    want = model.gradients(xb, output_gradient=dy)  # KEEP_ALL: layer by layer
    for keep in (_engine.KEEP_LAST, _engine.KEEP_FOR_BACKWARD):
        g.forward(xb, False, keep)
        fused = {g.layer_info(i)["name"]: g.layer_info(i)["fused_into"] >= 0
                 for i in range(g.num_layers())}
        assert fused["plain"] and fused["dw5"] and not any(fused[n] for n in ("dilated", "grouped", "multiplied"))
        np.testing.assert_allclose(g.get_output(g.num_layers() - 1, 3), want_y, rtol=1e-5,
                                   atol=1e-5)
    g.backward(dy)
    for layer in (l for l in base.layers if l._weights):
        for (i, w), (name, _, t) in zip(model._weight_slots[id(layer)], layer._weights):
            if t:
                assert_close_rel(g.get_gradient(i, w), want[f"{layer.name}/{name}"], 1e-5, name)


def test_keras_argument_errors_name_the_layer():
    with pytest.raises(ValueError, match="'c1'.*strides > 1.*dilation_rate > 1"):
        L.Conv2D(4, 3, strides=2, dilation_rate=2, name="c1")
    with pytest.raises(ValueError, match="'c2'.*filters must be evenly divisible.*groups=3"):
        L.Conv2D(4, 3, groups=3, name="c2")
    with pytest.raises(ValueError, match="'c3'.*input channels must be evenly divisible"):
        probe_model(L.Conv2D(4, 3, groups=2, name="c3"), (8, 8, 3))
    with pytest.raises(ValueError, match="'c4'.*depth_multiplier"):
        L.DepthwiseConv2D(3, depth_multiplier=0, name="c4")
    with pytest.raises(ValueError, match="'c5'.*kernel_size.*cannot contain 0"):
        L.Conv2D(4, (0, 3), name="c5")
    # the engine's own check, for graphs built directly
    g = _engine.Graph()
    g.add_layer("InputLayer", "in", (), shape=(8, 8, 3))
    with pytest.raises(ValueError, match="layer 'e1': `strides > 1` not supported"):
        g.add_layer("Conv2D", "e1", (0,), filters=4, kernel=(3, 3), strides=(2, 2),
                    dilation=(2, 2))
    with pytest.raises(ValueError, match="layer 'e2': groups=2 must divide"):
        g.add_layer("Conv2D", "e2", (0,), filters=4, kernel=(3, 3), groups=2)
    with pytest.raises(ValueError, match="layer 'e3': input 8x8 too small for kernel 9x9"):
        g.add_layer("Conv2D", "e3", (0,), filters=4, kernel=(3, 3), dilation=(4, 4))


def test_saving_round_trip(tmp_path):
    inputs = catdog.Input((9, 9, 4))
    x = L.Conv2D(4, 3, padding="same", dilation_rate=2, groups=2, name="c")(inputs)
    x = L.DepthwiseConv2D(5, strides=2, padding="same", depth_multiplier=2, name="d")(x)
    x = L.SeparableConv2D(3, 3, dilation_rate=2, depth_multiplier=3, name="s")(x)
    model = catdog.Model(inputs, x)
    model.save(tmp_path / "m.keras")
    again = catdog.models.load_model(tmp_path / "m.keras")
    xb = np.random.default_rng(0).normal(size=(2, 9, 9, 4)).astype(np.float32)
    np.testing.assert_array_equal(again.predict_on_batch(xb), model.predict_on_batch(xb))
    assert again.get_layer("c").groups == 2 and again.get_layer("d").depth_multiplier == 2
    assert again.get_layer("s").dilation_rate == (2, 2)


def test_arguments_in_keras_positional_order():
    """keras/src/layers/convolutional/conv2d.py, depthwise_conv2d.py, separable_conv2d.py:
    (filters,) kernel_size, strides, padding, data_format, dilation_rate, groups /
    depth_multiplier, activation, use_bias."""
    c = L.Conv2D(4, 3, 1, "same", None, 2, 2, "relu", False)
    assert (c.dilation_rate, c.groups, c.activation, c.use_bias) == ((2, 2), 2, "relu", False)
    d = L.DepthwiseConv2D(3, 1, "same", 2, None, 3, "swish", False)
    assert (d.depth_multiplier, d.dilation_rate, d.activation, d.use_bias) == \
        (2, (3, 3), "swish", False)
    s = L.SeparableConv2D(5, 3, 1, "valid", None, 2, 3, "tanh", False)
    assert (s.dilation_rate, s.depth_multiplier, s.activation, s.use_bias) == \
        ((2, 2), 3, "tanh", False)
