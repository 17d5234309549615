"""Helpers shared by tests/test_layers_*.py: a layer in a model behind an identity (so the
engine computes its input gradient), the engine's input gradient, and central differences."""
from pathlib import Path

import numpy as np

import catdog
from catdog import layers

FIXTURES = Path(__file__).parent / "fixtures" / "keras"


def load(section):
    return np.load(FIXTURES / f"layers_{section}.npz")


def probe_model(layer, shape):
    """Input -> identity (Rescaling(1)) -> layer: the identity's output gradient is the layer's
    input gradient (the engine computes gradients of layers between input and output)."""
    inputs = catdog.Input(shape)
    return catdog.Model(inputs, layer(layers.Rescaling(1.0, name="probe_identity")(inputs)))


def input_gradient(model, x, dy):
    """d sum(output * dy) / d input, through the engine's backward (inference mode)."""
    g = model._ensure_graph()
    shape = np.shape(x)
    out = g.output_gradient(model._check_x(x), 1, np.ascontiguousarray(dy, np.float32), False,
                            False)
    return out.reshape(shape)


def finite_difference_input_gradient(model, x, dy, h=1e-2, indices=None):
    """Central differences in float64 of sum(predict(x) * dy) by x, at `indices` (all: None)."""
    want = {}
    for i in (indices if indices is not None else np.ndindex(x.shape)):
        i = tuple(i)
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        yp = model.predict_on_batch(xp).astype(np.float64)
        ym = model.predict_on_batch(xm).astype(np.float64)
        want[i] = ((yp - ym) * dy).sum() / (2 * h)
    return want
