"""The Activation kind and `activation=` on Conv2D / Dense, checked against Keras 3
(keras/src/activations/activations.py, keras/src/backend/tensorflow/nn.py; fixtures by
tests/fixtures/make_activation_fixtures.py with TensorFlow 2.21 / Keras 3.15) and by finite
differences; and the Image classification tutorial's model shape (Conv2D with relu, MaxPooling2D,
Flatten, Dense with relu) on its logits, loss and every weight's gradient."""
from pathlib import Path

import numpy as np
import pytest

import catdog
from catdog import layers
from conftest import assert_close_rel

IO = np.load(Path(__file__).parent / "fixtures" / "keras" / "activations.npz")
NAMES = ["linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "silu", "swish", "hard_sigmoid",
         "hard_silu", "hard_swish", "gelu", "elu", "selu", "softplus"]
FWD_REL, GRAD_REL = 1e-5, 1e-5


def activation_model(name, shape=IO["x"].shape[1:]):
    """Input -> identity (Rescaling(1)) -> Activation: the identity's output gradient is the
    activation's input gradient (the engine probes layers between input and output)."""
    inputs = catdog.Input(shape)
    return catdog.Model(inputs, layers.Activation(name, name="act")(layers.Rescaling(1.0)(inputs)))


def input_gradient(model, x, dy):
    """d sum(output * dy) / d input, through the engine's backward."""
    g = model._ensure_graph()
    return g.output_gradient(x, 1, np.ascontiguousarray(dy, np.float32), False, False)


@pytest.mark.parametrize("name", NAMES)
def test_activation_matches_keras(name):
    model = activation_model(name)
    x = IO["x"]
    assert_close_rel(model.predict_on_batch(x), IO[f"y/{name}"], FWD_REL, f"{name} forward")
    dx = input_gradient(model, x, IO[f"dy/{name}"])
    assert_close_rel(dx.reshape(x.shape), IO[f"dx/{name}"], GRAD_REL, f"{name} gradient")


@pytest.mark.parametrize("name", NAMES)
def test_activation_gradient_adds_to_a_shared_input(name):
    """The activation's input also feeds an Add, so its backward adds to a gradient already
    there (acc), through the oneDNN kernels (sigmoid, tanh, silu, gelu) as through the C ones:
    d/dx sum((f(x) + x) * dy) = Keras's dx + dy. Two batch sizes, so two prepared states."""
    inputs = catdog.Input(IO["x"].shape[1:])
    r = layers.Rescaling(1.0)(inputs)
    model = catdog.Model(inputs, layers.Add()([layers.Activation(name)(r), r]))
    for k in (len(IO["x"]), 1):
        x, dy = IO["x"][:k], IO[f"dy/{name}"][:k]
        dx = input_gradient(model, x, dy).reshape(x.shape)
        assert_close_rel(dx, IO[f"dx/{name}"][:k] + dy, GRAD_REL, f"{name} accumulated gradient")


@pytest.mark.parametrize("name", [n for n in NAMES if n != "linear"])
def test_activation_gradient_by_finite_differences(name):
    """Central differences in float64 of the engine's own forward at points away from the
    functions' kinks (0, +-3, 6)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-5, 5, (1, 2, 2, 6)).astype(np.float32)
    x[np.abs(x) < 0.2] += 0.5
    x[np.abs(np.abs(x) - 3) < 0.2] += 0.5
    x[np.abs(x - 6) < 0.2] += 0.5
    model = activation_model(name, x.shape[1:])
    dy = rng.normal(size=x.shape).astype(np.float32)
    got = input_gradient(model, x, dy).reshape(x.shape)
    h = 1e-2
    want = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        yp = model.predict_on_batch(xp).astype(np.float64)
        ym = model.predict_on_batch(xm).astype(np.float64)
        want[i] = ((yp - ym) * dy).sum() / (2 * h)
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-3 * np.abs(want).max())


def test_unknown_activation_names_the_layer():
    with pytest.raises(ValueError, match="layer 'c1': unknown activation 'relu7'"):
        layers.Conv2D(2, 3, activation="relu7", name="c1")


def test_activation_takes_keras_names_and_functions():
    assert layers.Dense(2, activation="swish").activation == "swish"
    assert layers.Conv2D(2, 3, activation=catdog.activations.relu).activation == "relu"
    x = np.linspace(-4, 4, 9)
    np.testing.assert_allclose(catdog.activations.get("hard_swish")(x), x * np.clip(x + 3, 0, 6) / 6)


def tutorial_cnn():
    """Keras's classification tutorial's model shape, small (make_activation_fixtures.py)."""
    model = catdog.Sequential([
        catdog.Input((12, 12, 3)),
        layers.Rescaling(1.0 / 255, name="rescaling"),
        layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a"),
        layers.MaxPooling2D(name="pool"),
        layers.Conv2D(6, 3, padding="same", activation="swish", name="conv_b"),
        layers.Flatten(name="flatten"),
        layers.Dense(8, activation="relu", name="dense_a"),
        layers.Dense(3, name="logits"),
    ])
    for layer in model.layers:
        n = len(layer.get_weights())
        if n:
            layer.set_weights([IO[f"cnn/w/{layer.name}/{i}"] for i in range(n)])
    return model


def test_tutorial_cnn_matches_keras():
    model = tutorial_cnn()
    assert model.get_layer("flatten").output_shape == (6 * 6 * 6,)
    x, y = IO["cnn/x"], IO["cnn/y"]
    assert_close_rel(model.predict_on_batch(x), IO["cnn/logits"], FWD_REL, "logits")
    # layer outputs come after the layer's activation, as in Keras
    relu_out = model.layer_outputs(x, ["conv_a"])["conv_a"]
    assert relu_out.min() == 0 and (relu_out == 0).mean() > 0.1
    model.compile(optimizer="adam",
                  loss=catdog.losses.SparseCategoricalCrossentropy(from_logits=True))
    grads = model.gradients(x, y, loss=model._compiled.loss)
    want = {k[len("cnn/grad/"):]: IO[k] for k in IO.files if k.startswith("cnn/grad/")}
    names = {f"{layer.name}/{i}": f"{layer.name}/{w}" for layer in model.layers
             for i, w in enumerate(n for n, _, _ in layer._weights)}
    assert sorted(names[k] for k in want) == sorted(grads)
    for k, v in want.items():
        assert_close_rel(grads[names[k]], v, GRAD_REL, f"grad {k}")
    loss = model.evaluate(x, y, verbose=0)
    assert abs(loss - float(IO["cnn/loss"])) <= 1e-5 * max(1.0, float(IO["cnn/loss"]))


def test_tutorial_cnn_trains_deterministically():
    def run():
        catdog.random.set_seed(5)
        model = tutorial_cnn()
        model.compile(optimizer="adam",
                      loss=catdog.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        h = model.fit(IO["cnn/x"], IO["cnn/y"], epochs=5, batch_size=4, verbose=0)
        return h.history["loss"], model.get_layer("conv_a").get_weights()[0]

    (l1, w1), (l2, w2) = run(), run()
    assert l1 == l2 and np.array_equal(w1, w2)
    assert l1[-1] < l1[0]


def test_input_shape_on_the_first_layer_of_a_sequential():
    """Keras 3 (keras/src/layers/layer.py, models/sequential.py): input_shape= / input_dim= on
    a layer is kept, with a warning, and a Sequential it comes first in takes its input from it."""
    with pytest.warns(UserWarning, match="input_shape"):
        first = layers.Rescaling(1.0 / 255, input_shape=(8, 8, 3))
    model = catdog.Sequential([first, layers.Conv2D(2, 3, activation="relu"), layers.Flatten(),
                               layers.Dense(2)])
    assert model.input_shape == (8, 8, 3) and model.output_shape == (2,)
    assert model.predict_on_batch(np.ones((1, 8, 8, 3), np.float32)).shape == (1, 2)
    with pytest.warns(UserWarning, match="input_dim"):
        vec = catdog.Sequential([layers.Dense(4, activation="tanh", input_dim=3), layers.Dense(1)])
    assert vec.input_shape == (3,)
    assert vec.predict_on_batch(np.ones((5, 3), np.float32)).shape == (5, 1)
