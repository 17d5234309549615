"""The engine against TensorFlow/Keras: forward outputs, the lab head, gradients for three
freezing setups, BN training mode and three steps of each optimizer
(fixtures: tests/fixtures/make_keras_fixtures.py)."""
import json

import numpy as np
import pytest

import catdog
from catdog import layers
from conftest import FIXTURES, assert_close_rel, load_into, read_keras_h5, training_step_gradients

FWD_REL = 1e-4   # forward: max|a-b| <= 1e-4 * max|b|
GRAD_REL = 1e-3  # gradients and optimizer results


@pytest.fixture(scope="module")
def a035():
    io = dict(np.load(FIXTURES / "a035_96_io.npz"))
    weights = read_keras_h5(FIXTURES / "a035_96_weights.h5")
    return io, weights


def make_base(weights, alpha=0.35, size=96):
    base = catdog.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha,
                                           include_top=False, weights=None)
    load_into(base, weights)
    return base


def lab_model(base, io, size=96, dropout_training=False):
    inputs = catdog.Input(shape=(size, size, 3))
    x = base(inputs, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x, training=None if dropout_training else False)
    dense = layers.Dense(1, name="dense")
    out = dense(x)
    dense.set_weights([io["head_kernel"], io["head_bias"]])
    return catdog.Model(inputs, out)


def out_keys(io, prefix="out/"):
    return [k[len(prefix):] for k in io if k.startswith(prefix)]


def test_forward_layers_alpha035_96(a035):
    io, weights = a035
    base = make_base(weights)
    names = out_keys(io)
    assert len(names) >= 10
    got = base.layer_outputs(io["x"], names)
    for n in names:
        assert_close_rel(got[n], io[f"out/{n}"], FWD_REL, n)


def test_forward_layers_alpha050_75_odd_size():
    io = dict(np.load(FIXTURES / "a050_75_io.npz"))
    base = make_base(read_keras_h5(FIXTURES / "a050_75_weights.h5"), alpha=0.5, size=75)
    names = out_keys(io)
    got = base.layer_outputs(io["x"], names)
    for n in names:
        assert_close_rel(got[n], io[f"out/{n}"], FWD_REL, n)


def test_lab_head_logits_and_loss(a035):
    io, weights = a035
    model = lab_model(make_base(weights), io)
    logits = model.predict_on_batch(io["x"])
    assert_close_rel(logits, io["head/logits"], FWD_REL, "logits")
    loss, _ = catdog._engine.loss(catdog._engine.LOSS_BCE_LOGITS, logits, io["y"])
    assert abs(loss - float(io["head/loss"])) <= 1e-5 * max(1.0, abs(float(io["head/loss"])))


def _setup(base, name):
    if name == "frozen":
        base.trainable = False
    elif name == "from100":
        base.trainable = True
        for layer in base.layers[:100]:
            layer.trainable = False
    else:
        base.trainable = True


@pytest.mark.parametrize("path", ["layer_by_layer", "training_step"])
@pytest.mark.parametrize("setup", ["frozen", "from100", "all"])
def test_gradients_match_keras(a035, setup, path):
    io, weights = a035
    base = make_base(weights)
    model = lab_model(base, io)
    _setup(base, setup)
    if path == "layer_by_layer":
        grads = model.gradients(io["x"], io["y"])
    else:
        grads = training_step_gradients(model, io["x"], io["y"])
    want = {k[len(f"grad/{setup}/"):]: v for k, v in io.items()
            if k.startswith(f"grad/{setup}/") and not k.endswith("/keys")}
    keys = [str(k) for k in np.ravel(io[f"grad/{setup}/keys"])]
    assert sorted(grads) == sorted(keys), "trainable weights differ from Keras's"
    assert want, "fixture has no gradients for this setup"
    for k, v in want.items():
        assert k in grads, f"no gradient for {k}"
        assert_close_rel(grads[k], v, GRAD_REL, f"grad {k}")
    n_train = sum(w.size for w in model.trainable_weights)
    n_non = sum(w.size for w in model.non_trainable_weights)
    assert n_train == int(io[f"count/{setup}/trainable"])
    assert n_non == int(io[f"count/{setup}/non_trainable"])


def test_batchnorm_training_mode(a035):
    io, weights = a035
    base = make_base(weights)
    names = out_keys(io, "bntrain/out/")
    got = base.layer_outputs(io["x"], names, training=True)
    for n in names:
        assert_close_rel(got[n], io[f"bntrain/out/{n}"], FWD_REL, f"training-mode {n}")
    for lname in ("bn_Conv1", "block_3_expand_BN", "Conv_1_bn"):
        layer = base.get_layer(lname)
        _, _, mm, mv = layer.get_weights()
        old_mm, old_mv = weights[lname]["moving_mean"], weights[lname]["moving_variance"]
        # compare the update itself (new - old), which is 1e-3 of the batch statistic
        assert_close_rel(mm - old_mm, io[f"bntrain/{lname}/moving_mean"] - old_mm, GRAD_REL,
                         f"{lname} moving_mean update")
        assert_close_rel(mv - old_mv, io[f"bntrain/{lname}/moving_variance"] - old_mv, GRAD_REL,
                         f"{lname} moving_variance update")


OPTIMIZERS = {
    "adam": lambda: catdog.optimizers.Adam(learning_rate=1e-3),
    "rmsprop": lambda: catdog.optimizers.RMSprop(learning_rate=1e-3),
    "rmsprop_centered_momentum": lambda: catdog.optimizers.RMSprop(learning_rate=1e-3, momentum=0.9, centered=True),
    "sgd_momentum": lambda: catdog.optimizers.SGD(learning_rate=0.01, momentum=0.9),
    "sgd_nesterov": lambda: catdog.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_three_optimizer_steps(a035, name):
    io, weights = a035
    prefix = f"opt/{name}/"
    if not any(k.startswith(prefix) for k in io):
        pytest.fail(f"fixture lacks {prefix}")
    base = make_base(weights)
    model = lab_model(base, io)
    _setup(base, "from100")
    model.compile(optimizer=OPTIMIZERS[name](),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
    losses = [model.train_on_batch(io["x"], io["y"])[0] for _ in range(3)]
    np.testing.assert_allclose(losses, io[f"{prefix}losses"], rtol=1e-4)
    for key in (k for k in io if k.startswith(prefix) and k.count("/") == 3):
        lname, wname = key.split("/")[2:]
        layer = model.get_layer(lname) if lname == "dense" else base.get_layer(lname)
        value = dict(zip([n for n, _, _ in layer._weights], layer.get_weights()))[wname]
        start = weights[lname][wname] if lname != "dense" else (
            io["head_kernel"] if wname == "kernel" else io["head_bias"])
        # the criterion: weights after 3 steps within 1e-3 relative
        assert_close_rel(value, io[key], GRAD_REL, key)
        # and the change itself (3 steps move weights by ~3 lr, so the line above alone is
        # weak): within 2%. Adam normalises tiny gradients: where a GAP feature sits at the
        # ReLU6 boundary TF's rounding noise (~1e-9) becomes a visible step, so not tighter.
        assert_close_rel(value - start, io[key] - start, 2e-2, key + " (update)")


def _conv_trainable_bn_frozen(base):
    _setup(base, "from100")
    base.get_layer("block_13_expand_BN").trainable = False
    base.get_layer("block_14_depthwise_BN").trainable = False


def _split_between_conv_and_bn(base):
    base.trainable = True
    names = [layer.name for layer in base.layers]
    for layer in base.layers[:names.index("block_12_expand_BN")]:
        layer.trainable = False


@pytest.mark.parametrize("setup", [_conv_trainable_bn_frozen, _split_between_conv_and_bn])
def test_training_step_gradients_when_conv_and_bn_differ(a035, setup):
    """A trainable conv under a frozen BN runs as a trainable block without BN gradients; a
    frozen conv under a trainable BN runs layer by layer: either way the training step's
    gradients are the layer-by-layer ones."""
    io, weights = a035
    got = {}
    for path in ("layer_by_layer", "training_step"):
        base = make_base(weights)
        model = lab_model(base, io)
        setup(base)
        got[path] = (model.gradients(io["x"], io["y"]) if path == "layer_by_layer"
                     else training_step_gradients(model, io["x"], io["y"]))
    assert sorted(got["layer_by_layer"]) == sorted(got["training_step"])
    assert len(got["training_step"]) > 40
    for k, v in got["layer_by_layer"].items():
        assert_close_rel(got["training_step"][k], v, GRAD_REL, k)
