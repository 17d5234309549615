"""Central finite differences against the engine's analytic gradients, per layer type, on a
tiny model: Conv2D (same, stride 2, with bias), BatchNormalization (inference and training
mode), ReLU(6), ZeroPadding2D, DepthwiseConv2D, Add, Rescaling, GlobalAveragePooling2D,
Dropout (fixed mask within a step) and Dense (linear and softmax)."""
import numpy as np
import pytest

import catdog
from catdog import layers


def tiny_model(activation=None, units=3):
    catdog.random.set_seed(7)
    inp = catdog.Input((9, 9, 3))
    x = layers.Rescaling(0.5, offset=-0.25, name="scale")(inp)
    x = layers.Conv2D(6, 3, strides=2, padding="same", use_bias=True, name="conv")(x)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(6.0, name="relu1")(x)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    x = layers.DepthwiseConv2D(3, use_bias=False, name="dw")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    y = layers.ReLU(6.0, name="relu2")(x)
    z = layers.Conv2D(6, 1, use_bias=False, name="project")(y)
    x = layers.Add(name="add")([y, z])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.3, name="drop")(x)
    out = layers.Dense(units, activation=activation, name="dense")(x)
    model = catdog.Model(inp, out)
    rng = np.random.default_rng(3)
    for layer in model.layers:  # non-trivial BN statistics and affine parameters
        if isinstance(layer, layers.BatchNormalization):
            c = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c),
                               rng.normal(0, 0.3, c), rng.uniform(0.5, 1.5, c)])
    return model


def loss_value(model, x, r, training):
    g = model._ensure_graph()
    g.forward(x, training)
    return float(np.sum(g.get_output(g.num_layers() - 1, len(x)).astype(np.float64) * r))


@pytest.mark.parametrize("training,activation", [(False, None), (True, None), (False, "softmax")])
def test_finite_differences(training, activation):
    model = tiny_model(activation)
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 4, (4, 9, 9, 3)).astype(np.float32)
    r = rng.normal(size=(4, 3)).astype(np.float32)
    grads = model.gradients(x, output_gradient=r, training=training)
    assert set(grads) == {"conv/kernel", "conv/bias", "bn1/gamma", "bn1/beta", "dw/depthwise_kernel",
                          "bn2/gamma", "bn2/beta", "project/kernel", "dense/kernel", "dense/bias"}
    for key, grad in grads.items():
        lname, wname = key.split("/")
        layer = model.get_layer(lname)
        names = [n for n, _, _ in layer._weights]
        k = names.index(wname)
        base = layer.get_weights()
        flat_idx = rng.choice(grad.size, size=min(8, grad.size), replace=False)
        for fi in flat_idx:
            # several step sizes: a ReLU6 kink within a step spoils only the larger ones
            fds = []
            for h in (3e-3, 1e-3, 3e-4):
                vals = []
                for sign in (1, -1):
                    ws = [w.copy() for w in base]
                    ws[k].reshape(-1)[fi] += sign * h
                    layer.set_weights(ws)
                    vals.append(loss_value(model, x, r, training))
                fds.append((vals[0] - vals[1]) / (2 * h))
            layer.set_weights(base)
            an = float(grad.reshape(-1)[fi])
            scale = max(float(np.abs(grad).max()), 1e-3)
            err = min(abs(fd - an) for fd in fds)
            # + 2e-4: float32 rounding of the loss divided by h (a conv bias before a
            # training-mode BN has true gradient 0; its estimates are +-5e-5)
            assert err <= 1e-2 * scale + 2e-4, f"{key}[{fi}]: finite diffs {fds} vs {an:.6g}"


def test_input_gradient_through_every_layer_is_used():
    """A model that trains only its first layer still gets a gradient through all the others."""
    model = tiny_model()
    for layer in model.layers:
        layer.trainable = layer.name == "conv"
    x = np.random.default_rng(0).uniform(0, 4, (2, 9, 9, 3)).astype(np.float32)
    grads = model.gradients(x, output_gradient=np.ones((2, 3), np.float32))
    assert set(grads) == {"conv/kernel", "conv/bias"}
    assert np.abs(grads["conv/kernel"]).max() > 0
