"""BatchNormalization(center=False / scale=False) (keras/src/layers/normalization/
batch_normalization.py: no beta / gamma weight, get_weights lists the others in order): forward,
input and weight gradients, in inference mode (where catdog runs Conv -> BN -> ReLU as one
trainable fused block, nn/conv_fused.c) and in training mode (moving statistics updated), against
Keras 3.15 / TF 2.21 (tests/fixtures/make_layers_fixtures.py batchnorm), and by finite
differences; saving, optimizer state and weight counts see only the present weights."""
import json

import numpy as np
import pytest

import catdog
from catdog import _engine, layers
from conftest import assert_close_rel
from layers_common import load

IO = load("batchnorm")
CASES = ["ft", "tf", "ff"]  # center, scale: t / f


def model_for(cs, case=None, relu=True, head=False):
    center, scale = cs[0] == "t", cs[1] == "t"
    inputs = catdog.Input((5, 5, 3))
    x = layers.Rescaling(1.0, name="probe_identity")(inputs)
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(x)
    x = layers.BatchNormalization(center=center, scale=scale, name="bn")(x)
    if relu:
        x = layers.ReLU(name="relu")(x)
    if head:
        x = layers.Dense(1, name="head")(layers.GlobalAveragePooling2D(name="gap")(x))
    model = catdog.Model(inputs, x)
    if case:
        for name in ("conv", "bn"):
            layer = model.get_layer(name)
            layer.set_weights([IO[f"w/{case}/{name}/{i}"] for i in range(len(layer._weights))])
    return model


def engine_gradients(model, x, dy, training):
    """Weight gradients of sum(output * dy) from a forward that keeps what a backward needs
    (as a training step's): there the trainable conv and an inference-mode BN run fused."""
    g = model._ensure_graph()
    g.forward(np.ascontiguousarray(x), training, _engine.KEEP_FOR_BACKWARD)
    fused = {g.layer_info(i)["name"]: g.layer_info(i)["fused_into"] >= 0
             for i in range(g.num_layers())}
    g.backward(np.ascontiguousarray(dy))
    grads = {}
    for layer in (model.get_layer("conv"), model.get_layer("bn")):
        for (i, w), (name, _, t) in zip(model._weight_slots[id(layer)], layer._weights):
            if t:
                grads[f"{layer.name}/{name}"] = g.get_gradient(i, w)
    return grads, fused


@pytest.mark.parametrize("cs", CASES)
def test_weights_as_keras_lists_them(cs):
    bn = model_for(cs).get_layer("bn")
    assert [n for n, _, _ in bn._weights] == list(IO[f"names/{cs}"])
    assert bn.count_params() == int(IO[f"params/{cs}"])
    assert len(bn.trainable_weights) == (cs[0] == "t") + (cs[1] == "t")
    assert len(bn.non_trainable_weights) == 2
    cfg, want = bn.get_config(), json.loads(str(IO[f"config/{cs}"]))
    assert (cfg["center"], cfg["scale"]) == (want["center"], want["scale"])


@pytest.mark.parametrize("mode", ["inference", "training"])
@pytest.mark.parametrize("cs", CASES)
def test_matches_keras(cs, mode):
    case, training = f"{cs}_{mode}", mode == "training"
    model = model_for(cs, case)
    x, dy = IO[f"x/{case}"], IO[f"dy/{case}"]
    want = {k.split("/", 2)[2]: IO[k] for k in IO.files if k.startswith(f"grad/{case}/")}
    # layer by layer (every output kept): forward, input gradient, weight gradients
    if training:  # a training forward moves the moving statistics as Keras's call did
        y = model.layer_outputs(x, ["relu"], training=True)["relu"]
        for i, w in enumerate(model.get_layer("bn").get_weights()):
            assert_close_rel(w, IO[f"after/{case}/bn/{i}"], 1e-5, f"bn weight {i}")
    else:
        y = model.predict_on_batch(x)
    assert_close_rel(y, IO[f"y/{case}"], 1e-5, "forward")
    g = model._ensure_graph()
    dx = g.output_gradient(x, 1, np.ascontiguousarray(dy), training, False).reshape(x.shape)
    assert_close_rel(dx, IO[f"dx/{case}"], 2e-5, "input gradient")
    grads = model.gradients(x, output_gradient=dy, training=training)
    assert sorted(grads) == sorted(want)
    for k, v in want.items():
        assert_close_rel(grads[k], v, 2e-5, f"grad {k}")
    # as a training step runs it: in inference mode the trainable conv and the BN are one
    # fused block, but while a fixed beta's BN trains (center=False, scale=True: bn_flags)
    grads, fused = engine_gradients(model, x, dy, training)
    assert fused["bn"] == (not training and cs != "ft")
    for k, v in want.items():
        assert_close_rel(grads[k], v, 2e-5, f"grad {k} (training step's plan)")


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("cs", CASES)
def test_fixed_gamma_beta_stay_fixed_while_training(cs, training):
    """Adam steps on a head over the conv -> BN -> ReLU model called with training=False (the
    lab's fine-tuning: BN in inference mode, conv and BN one fused trainable block) or in
    training mode: the present gamma / beta move, the engine's fixed ones stay 1 / 0 (a
    prediction recomputed in NumPy from the layer's weights agrees)."""
    catdog.random.set_seed(3)
    base = model_for(cs, f"{cs}_inference")
    inputs = catdog.Input((5, 5, 3))
    features = base(inputs, training=None if training else False)
    model = catdog.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling2D()(features)))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5, 5, 3)).astype(np.float32)
    y = rng.normal(size=(8, 1)).astype(np.float32)
    model.compile(optimizer=catdog.optimizers.Adam(0.05), loss="mse")
    bn = base.get_layer("bn")
    before = bn.get_weights()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    after = bn.get_weights()
    for k in range((cs[0] == "t") + (cs[1] == "t")):
        assert not np.allclose(before[k], after[k])
    named = dict(zip([n for n, _, _ in bn._weights], after))
    gamma, beta = named.get("gamma", 1.0), named.get("beta", 0.0)
    z = base.layer_outputs(x, ["conv"])["conv"]
    want = np.maximum((z - named["moving_mean"]) / np.sqrt(named["moving_variance"] + 1e-3)
                      * gamma + beta, 0)
    assert_close_rel(base.predict_on_batch(x), want, 1e-5, "prediction")


@pytest.mark.parametrize("cs", CASES)
def test_gradients_by_finite_differences(cs):
    """No ReLU: its kinks would make central differences unreliable."""
    model = model_for(cs, f"{cs}_inference", relu=False)
    x, dy = IO[f"x/{cs}_inference"], IO[f"dy/{cs}_inference"]
    grads = model.gradients(x, output_gradient=dy, training=False)
    for key, grad in grads.items():
        lname, wname = key.split("/")
        layer = model.get_layer(lname)
        k = [n for n, _, _ in layer._weights].index(wname)
        base = layer.get_weights()
        for fi in np.random.default_rng(1).choice(grad.size, size=min(6, grad.size), replace=False):
            vals = []
            for h in (1e-2, -1e-2):
                ws = [w.copy() for w in base]
                ws[k].flat[fi] += h
                layer.set_weights(ws)
                vals.append(float(np.sum(model.predict_on_batch(x).astype(np.float64) * dy)))
            layer.set_weights(base)
            want = (vals[0] - vals[1]) / 2e-2
            assert abs(grad.flat[fi] - want) <= 2e-2 * max(1.0, abs(want)), (key, fi)


def test_saving_and_optimizer_state_round_trip(tmp_path):
    """A .keras file of a model with BN(scale=False) after an Adam step: config, weights and the
    optimizer's slots (one per present trainable weight) load back."""
    rng = np.random.default_rng(2)
    model = model_for("tf", "tf_inference", head=True)
    x = rng.normal(size=(4, 5, 5, 3)).astype(np.float32)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, rng.normal(size=(4, 1)).astype(np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "bn.keras")
    again = catdog.models.load_model(tmp_path / "bn.keras")
    bn = again.get_layer("bn")
    assert (bn.center, bn.scale) == (True, False)
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.predict_on_batch(x), model.predict_on_batch(x))
