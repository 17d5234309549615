"""MaxPooling2D and AveragePooling2D (csrc/nn/pooling.c) against Keras (fixture from
tests/fixtures/make_pooling_fixtures.py) and finite differences.

The pooling layer's input comes from a generator: ZeroPadding2D + Conv2D on a 1x1 input of
ones, whose (7, 9) kernel is the image flipped, so the conv writes the image exactly and its
kernel gradient is the pooling layer's input gradient (flipped back)."""
import json

import numpy as np
import pytest

import catdog
from catdog import _engine, layers
from conftest import FIXTURES, assert_close_rel

H, W, C = 7, 9, 3


@pytest.fixture(scope="module")
def fix():
    f = dict(np.load(FIXTURES / "pooling.npz"))
    return f, json.loads(str(f["cases"]))


def generator_model(kind, pool, strides, padding):
    inputs = catdog.Input((1, 1, 1))
    x = layers.ZeroPadding2D(((H - 1, H - 1), (W - 1, W - 1)))(inputs)
    conv = layers.Conv2D(C, (H, W), use_bias=False, name="gen")
    x = conv(x)
    out = getattr(layers, kind)(pool_size=pool, strides=strides, padding=padding)(x)
    return catdog.Model(inputs, out), conv


def set_image(conv, img):
    conv.set_weights([np.ascontiguousarray(img[::-1, ::-1, None, :], np.float32)])


ONE = np.ones((1, 1, 1, 1), np.float32)


def test_engine_has_the_pooling_kinds():
    assert {"MaxPooling2D", "AveragePooling2D"} <= set(_engine.layer_kinds())


@pytest.mark.parametrize("case", range(8))
def test_pooling_matches_keras(fix, case):
    f, cases = fix
    kind, pool, strides, padding = cases[case]
    model, conv = generator_model(kind, pool, strides, padding)
    for s in range(len(f["x"])):  # samples one by one: the generator makes one image
        set_image(conv, f["x"][s])
        y = model.predict_on_batch(ONE)
        assert y.shape[1:] == f[f"y/{case}"].shape[1:], (kind, pool, strides, padding)
        assert_close_rel(y[0], f[f"y/{case}"][s], 1e-6, f"{kind} {pool} {strides} {padding} y")
        g = model.gradients(ONE, output_gradient=f[f"dy/{case}"][s:s + 1])["gen/kernel"]
        dx = g[::-1, ::-1, 0, :]
        assert_close_rel(dx, f[f"dx/{case}"][s], 1e-6, f"{kind} {pool} {strides} {padding} dx")


@pytest.mark.parametrize("kind", ["MaxPooling2D", "AveragePooling2D"])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pooling_gradient_matches_finite_differences(kind, padding):
    rng = np.random.default_rng(3)
    model, conv = generator_model(kind, (3, 2), (2, 2), padding)
    # distinct values 0.05 apart: a +-eps step never changes which pixel is a window's max
    img = ((rng.permutation(H * W * C) - H * W * C / 2) * 0.05).reshape(H, W, C)
    set_image(conv, img.astype(np.float32))
    y = model.predict_on_batch(ONE)
    dy = rng.normal(size=y.shape).astype(np.float32)
    dx = model.gradients(ONE, output_gradient=dy)["gen/kernel"][::-1, ::-1, 0, :]

    def loss(im):
        set_image(conv, im.astype(np.float32))
        return float(np.sum(model.predict_on_batch(ONE).astype(np.float64) * dy))

    eps = 0.02
    picks = [tuple(rng.integers(0, s) for s in (H, W, C)) for _ in range(24)]
    picks += [tuple(int(i) for i in np.argwhere(dx != 0)[k]) for k in range(4)]  # some that win
    for p in picks:
        up, down = img.copy(), img.copy()
        up[p] += eps
        down[p] -= eps
        fd = (loss(up) - loss(down)) / (2 * eps)
        assert abs(fd - dx[p]) <= 2e-3 * max(1.0, abs(fd)), (p, fd, dx[p])


def test_pooling_in_a_trained_network_fused_paths_agree():
    """A CNN with pooling between conv blocks: the fused, micro-batched predict agrees with the
    layer-by-layer forward, and training steps through both run and learn."""
    catdog.random.set_seed(4)
    inputs = catdog.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.AveragePooling2D(3, strides=2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(1)(x)
    model = catdog.Model(inputs, out)
    rng = np.random.default_rng(5)
    xb = rng.uniform(-1, 1, (20, 16, 16, 3)).astype(np.float32)
    yb = (rng.uniform(size=20) > 0.5).astype(np.float32)
    g = model._ensure_graph()
    g.forward(xb, False)
    full = g.get_output(g.num_layers() - 1, 20)
    np.testing.assert_allclose(model.predict_on_batch(xb), full, rtol=1e-5, atol=1e-6)
    plan = g.describe_plan(20, False, _engine.KEEP_LAST)
    assert "segment" in plan and "MaxPooling2D" in plan and "AveragePooling2D" in plan
    model.compile(optimizer=catdog.optimizers.Adam(1e-2),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    first = model.train_on_batch(xb, yb)
    for _ in range(15):
        last = model.train_on_batch(xb, yb)
    assert np.isfinite(first) and last < first
