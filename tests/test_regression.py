"""Regression losses (MeanSquaredError / "mse", MeanAbsoluteError / "mae", Huber / "huber") on a
model of vectors, as Keras 3's guides build them, against keras/src/losses/losses.py (fixtures by
tests/fixtures/make_regression_fixtures.py, TensorFlow 2.21 / Keras 3.15)."""
from pathlib import Path

import numpy as np
import pytest

import catdog
from catdog import layers
from conftest import assert_close_rel

IO = np.load(Path(__file__).parent / "fixtures" / "keras" / "regression.npz")
LOSSES = {"mse": catdog.losses.MeanSquaredError, "mae": catdog.losses.MeanAbsoluteError,
          "huber": catdog.losses.Huber}


def model():
    m = catdog.Sequential([catdog.Input((4,)), layers.Dense(8, activation="relu", name="hidden"),
                           layers.Dense(2, name="out")])
    for layer in m.layers:
        layer.set_weights([IO[f"w/{layer.name}/{i}"] for i in range(len(layer.get_weights()))])
    return m


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_regression_loss_and_gradients_match_keras(name):
    x, y = IO["x"], IO["y"]
    for loss in (name, LOSSES[name]()):
        m = model()
        m.compile(optimizer="sgd", loss=loss)
        assert abs(m.evaluate(x, y, verbose=0) - float(IO[f"{name}/value"])) <= 1e-5
        grads = m.gradients(x, y, loss=m._compiled.loss)
        for layer in m.layers:
            for i, (w, _, _) in enumerate(layer._weights):
                assert_close_rel(grads[f"{layer.name}/{w}"], IO[f"{name}/grad/{layer.name}/{i}"],
                                 1e-5, f"{name} grad {layer.name}/{w}")


def test_regression_fits_and_refuses_accuracy_and_bad_targets():
    m = model()
    with pytest.raises(ValueError, match="regression does not have"):
        m.compile(loss="mse", metrics=["accuracy"])
    m.compile(optimizer=catdog.optimizers.Adam(1e-2), loss="mse")
    h = m.fit(IO["x"], IO["y"], epochs=20, batch_size=6, verbose=0)
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    with pytest.raises(ValueError, match="2 target value"):
        m.fit(IO["x"], IO["y"][:, :1], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="delta=1.0 only"):
        catdog.losses.Huber(delta=2.0)
