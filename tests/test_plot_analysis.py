"""catdog.plot after training: top losses, confusion matrix, Grad-CAM (Agg, no pyplot). The
Grad-CAM gradient comes from the C engine's backward to the chosen layer; checked against
the closed form of a GlobalAveragePooling2D -> Dense head (d logit / d A = W / (h w))."""
import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")

import catdog  # noqa: E402
from catdog import layers, plot  # noqa: E402
from conftest import FIXTURES, load_into, read_keras_h5  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_top_losses_orders_by_crossentropy(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (12, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 2, 12)
    p = rng.uniform(0, 1, (12, 1)).astype(np.float32)
    p[3] = 1.0 if y[3] == 0 else 0.0  # certain and wrong: the clip keeps the loss finite
    fig = plot.top_losses(x, y, p, ["cats", "dogs"], n=4, path=tmp_path / "top.png")
    p_true = np.clip(np.where(y == 1, p[:, 0], 1 - p[:, 0]), 1e-7, 1 - 1e-7)
    want = np.argsort(np.log(p_true), kind="stable")[:4]
    np.testing.assert_array_equal(fig.catdog_order, want)
    assert fig.catdog_order[0] == 3 and fig.catdog_losses[0] == pytest.approx(-np.log(1e-7), rel=1e-4)
    titles = [ax.get_title() for ax in fig.axes]
    j = want[1]
    pred = int(p[j, 0] > 0.5)
    assert f"({max(p[j, 0], 1 - p[j, 0]):.2f})" in titles[1]
    assert ["cats", "dogs"][y[j]] in titles[1].splitlines()[0]
    assert (fig.axes[1].title.get_color() == "tab:red") == (pred != y[j])
    assert (tmp_path / "top.png").read_bytes()[:8] == PNG


def test_top_losses_multiclass_and_bad_input():
    x = np.zeros((3, 8, 8, 3), np.float32)
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]], np.float32)
    y = np.eye(3)[[0, 0, 2]]  # one-hot labels
    fig = plot.top_losses(x, y, p, n=3)
    assert list(fig.catdog_order) == [1, 2, 0]
    with pytest.raises(ValueError, match="probability rows"):
        plot.top_losses(x, [0, 1], p[:2])
    with pytest.raises(ValueError, match="class indices"):
        plot.top_losses(x, [0, 1, 5], p)


def test_confusion_matrix_counts_and_annotations(tmp_path):
    y = np.array([0, 0, 1, 1, 1, 2, 2, 0])
    pred = np.array([0, 1, 1, 1, 0, 2, 1, 0])
    counts = plot.confusion_counts(y, pred, 3)
    want = np.zeros((3, 3), int)
    for a, b in zip(y, pred):
        want[a, b] += 1
    np.testing.assert_array_equal(counts, want)
    fig = plot.confusion_matrix(y, pred, ["a", "b", "c"], path=tmp_path / "cm.png")
    assert _texts(fig) == [str(v) for v in want.ravel()]
    assert "62.5%" in fig.axes[0].get_title()
    probs = np.eye(3)[pred] * 0.8 + 0.05
    np.testing.assert_array_equal(plot.confusion_matrix(y, probs).catdog_counts, want)
    norm = plot.confusion_matrix(y, pred, normalize=True)
    assert _texts(norm)[:3] == ["0.67", "0.33", "0.00"]
    with pytest.raises(ValueError, match="labels but"):
        plot.confusion_counts(y, pred[:3])


def small_model(units, activation, frozen_conv=False):
    inputs = catdog.Input((8, 8, 3))
    conv = layers.Conv2D(4, 3, padding="same")
    conv.trainable = not frozen_conv
    relu = layers.ReLU()
    a = relu(conv(inputs))
    dense = layers.Dense(units, activation=activation)
    model = catdog.Model(inputs, dense(layers.GlobalAveragePooling2D()(a)))
    return model, conv, relu, dense


@pytest.mark.parametrize("units,activation,frozen", [(1, None, False), (3, "softmax", True),
                                                     (1, "sigmoid", True)])
def test_grad_cam_gradient_is_the_engines_backward(units, activation, frozen):
    catdog.random.set_seed(3)
    model, conv, relu, dense = small_model(units, activation, frozen)
    x = np.random.default_rng(2).uniform(0, 255, (5, 8, 8, 3)).astype(np.float32) / 127.5 - 1
    g = model._ensure_graph()
    cls = np.array([0, 1, 0, 1, 1]) if units == 1 else np.array([0, 1, 2, 2, 1])
    dy = np.zeros((5, units), np.float32)
    if units == 1:
        dy[:, 0] = np.where(cls == 1, 1, -1)
    else:
        dy[np.arange(5), cls] = 1
    w = dense.get_weights()[0]  # (4, units)
    # at the ReLU's output: d logit / d A = W[:, cls] / (h w), the same at every position
    grad = g.output_gradient(x, g.find_layer(relu.name), dy, False, True)
    want = np.broadcast_to((dy @ w.T)[:, None, None, :] / 64, grad.shape)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)
    # one layer further down (the conv's output): the ReLU's mask applies
    pre = model.layer_outputs(x, [conv.name])[conv.name]
    grad_conv = g.output_gradient(x, g.find_layer(conv.name), dy, False, True)
    np.testing.assert_allclose(grad_conv, want * (pre > 0), rtol=1e-5, atol=1e-7)

    maps, got_cls = plot.grad_cam(model, x, class_index=cls, layer=relu.name)
    acts = model.layer_outputs(x, [relu.name])[relu.name]
    cam = np.maximum(np.einsum("nhwc,nc->nhw", acts, (dy @ w.T) / 64), 0)
    cam /= np.where(cam.max(axis=(1, 2)) > 0, cam.max(axis=(1, 2)), 1)[:, None, None]
    np.testing.assert_allclose(maps, cam, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(got_cls, cls)
    # predictions are unchanged by the probe (outputs are the model's again)
    before = model.predict(x)
    plot.grad_cam(model, x)
    np.testing.assert_allclose(model.predict(x), before, rtol=0, atol=0)


def test_grad_cam_through_a_frozen_mobilenet(tmp_path):
    """The lab's shape: a frozen MobileNetV2 base (alpha 0.35, 96x96), GAP, Dense(1); the
    maps are at out_relu (3x3) and follow the closed form there."""
    base = catdog.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35,
                                           include_top=False, weights=None)
    load_into(base, read_keras_h5(FIXTURES / "a035_96_weights.h5"))
    base.trainable = False
    inputs = catdog.Input((96, 96, 3))
    x = catdog.applications.mobilenet_v2.preprocess_input(inputs)
    x = layers.GlobalAveragePooling2D()(base(x, training=False))
    dense = layers.Dense(1)
    model = catdog.Model(inputs, dense(x))
    images = np.load(FIXTURES / "weights_roundtrip.npz")["x"]
    maps, cls = plot.grad_cam(model, images)
    assert maps.shape == (4, 3, 3) and maps.max() == pytest.approx(1.0)
    logits = model.predict(images)[:, 0]
    np.testing.assert_array_equal(cls, (logits > 0).astype(int))
    acts = model.layer_outputs(images, ["out_relu"])["out_relu"]
    sign = np.where(cls == 1, 1.0, -1.0)
    cam = np.maximum(np.einsum("nhwc,c->nhw", acts, dense.get_weights()[0][:, 0] / 9) * sign[:, None, None], 0)
    cam /= cam.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(maps, cam, rtol=1e-4, atol=1e-5)
    fig = plot.grad_cam_overlay(model, images, ["cats", "dogs"], path=tmp_path / "cam.png")
    assert len(fig.axes) == 4 and fig.catdog_maps.shape == (4, 3, 3)
    assert (tmp_path / "cam.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="no \\(H, W, C\\) output"):
        plot.grad_cam(model, images, layer=dense.name)
