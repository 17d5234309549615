"""Models with a free input size: `Input((None, None, 3))`, and the applications' Keras default
`input_shape=None` without the top (keras/src/applications/imagenet_utils.py,
obtain_input_shape: (None, None, 3)). The engine plans a graph per image size, as it plans per
batch size (catdog/models.py Model._use_size): "same" paddings follow each size's parity as
TensorFlow's do, the weights and the optimizer state carry across sizes, as Keras's one set of
variables does.

Checked against Keras (tests/fixtures/make_free_size_fixtures.py -> keras/free_size.npz:
outputs, loss and gradients at odd, even and non-square sizes; two Adam steps at two sizes)
and against catdog's own fixed-size models, which the rest of the suite checks against Keras.
"""
import hashlib
import os

import numpy as np
import pytest

import catdog
from catdog import applications, layers
from conftest import assert_close_rel
from free_size_model import SIZES, build
from test_applications_weights import _serve
from test_weights_download import LocalServer, sandbox  # noqa: F401  (autouse: CATDOG_HOME in tmp)

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "keras", "free_size.npz")


def free_model(shape=(None, None, 3)):
    """The fixture's model (tests/free_size_model.py), on `shape`."""
    return build(layers, catdog.Input, catdog.Model, shape)


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURE))


def keras_weights(ref, prefix="w/"):
    n = len([k for k in ref if k.startswith(prefix) and k[len(prefix):].isdigit()])
    return [ref[f"{prefix}{i}"] for i in range(n)]


def test_free_model_is_symbolic_until_it_runs():
    m = free_model()
    assert m.input_shape == (None, None, 3) and m.output_shape == (1,)
    assert m.get_layer("pool").output_shape == (None, None, 8)
    assert m.get_layer("conv1").pads == (None, None, None, None)  # "same": per size
    assert m.count_params() == free_model((40, 40, 3)).count_params()


def test_predict_matches_keras_at_odd_even_and_non_square_sizes(ref):
    m = free_model()
    m.set_weights(keras_weights(ref))
    for h, w in SIZES:
        key = f"{h}x{w}"
        assert_close_rel(m.predict(ref[f"x/{key}"]), ref[f"y/{key}"], 1e-5, key)
    # the layers keep their free geometry between runs
    assert m.get_layer("conv1").pads == (None, None, None, None)
    assert m.get_layer("conv1").input_shape == (None, None, 3)


def test_gradients_match_keras_at_each_size(ref):
    m = free_model()
    m.set_weights(keras_weights(ref))
    names = [f"{l.name}/{n}" for l in m.layers for n, _, t in l._weights if t]
    for h, w in SIZES:
        key = f"{h}x{w}"
        grads = m.gradients(ref[f"x/{key}"], ref[f"t/{key}"])
        assert len(grads) == len(names)
        for i, name in enumerate(names):
            assert_close_rel(grads[name], ref[f"g/{key}/{i}"], 1e-4, f"{key} {name}")


def test_free_model_equals_fixed_models_bit_for_bit(ref):
    """Each size's graph is the one a fixed-size model of that size gets: same bits."""
    m = free_model()
    m.set_weights(keras_weights(ref))
    for h, w in SIZES + [(33, 33)]:  # and back to a size already planned
        fixed = free_model((h, w, 3))
        fixed.set_weights(keras_weights(ref))
        x = ref[f"x/{h}x{w}"]
        np.testing.assert_array_equal(m.predict(x), fixed.predict(x))


def test_training_across_sizes_matches_keras(ref):
    """Adam steps at 37x41 then 48x48 (BN in training mode): the weights, BN moving statistics
    included, and the optimizer's moments and step count go from one size's graph to the
    other's, as Keras's one optimizer does."""
    m = free_model()
    m.set_weights(keras_weights(ref))
    m.compile(optimizer=catdog.optimizers.Adam(1e-2),
              loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    m.train_on_batch(ref["seq/x1"], ref["seq/t1"])
    m.train_on_batch(ref["seq/x2"], ref["seq/t2"])
    for i, (a, b) in enumerate(zip(m.get_weights(), keras_weights(ref, "seq/w/"))):
        assert_close_rel(a, b, 1e-5, f"weight {i}")
    assert m._opt_owner == (48, 48)
    # the same two steps with the optimizer started afresh at the second size (what a graph
    # per size would do without the carry) end elsewhere: the comparison above can fail
    lost = free_model()
    lost.set_weights(keras_weights(ref))
    lost.compile(optimizer=catdog.optimizers.Adam(1e-2),
                 loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    lost.train_on_batch(ref["seq/x1"], ref["seq/t1"])
    lost.compile(optimizer=catdog.optimizers.Adam(1e-2),
                 loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    lost.train_on_batch(ref["seq/x2"], ref["seq/t2"])
    kernel = [i for i, w in enumerate(keras_weights(ref)) if w.shape == (3, 3, 3, 8)][0]
    err = np.abs(lost.get_weights()[kernel] - ref[f"seq/w/{kernel}"]).max()
    assert err > 1e-3, err


def test_fit_on_one_size_with_validation_on_another_equals_fixed_models():
    """fit at 40x40 with validation at 56x56 switches graphs twice an epoch: the result is the
    fixed 40x40 model's, bit for bit, and the validation numbers the fixed 56x56 model's."""
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-1, 1, (8, 40, 40, 3)).astype(np.float32), rng.integers(0, 2, (8, 1))
    vx, vy = rng.uniform(-1, 1, (4, 56, 56, 3)).astype(np.float32), rng.integers(0, 2, (4, 1))
    start = free_model((40, 40, 3)).get_weights()

    def compiled(shape):
        m = free_model(shape)
        m.set_weights(start)
        m.compile(optimizer=catdog.optimizers.Adam(1e-2),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
        return m

    catdog.utils.set_random_seed(7)
    free = compiled((None, None, 3))
    h = free.fit(x, y, batch_size=4, epochs=3, validation_data=(vx, vy), verbose=0)
    catdog.utils.set_random_seed(7)
    fixed = compiled((40, 40, 3))
    fixed.fit(x, y, batch_size=4, epochs=3, verbose=0)
    for a, b in zip(free.get_weights(), fixed.get_weights()):
        np.testing.assert_array_equal(a, b)
    val = compiled((56, 56, 3))
    val.set_weights(fixed.get_weights())
    loss, acc = val.evaluate(vx, vy, verbose=0)
    assert h.history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)
    assert h.history["val_accuracy"][-1] == pytest.approx(acc)


def test_optimizer_state_survives_a_graph_evicted_from_the_cache():
    """More sizes than the kept graphs: the graph that trained is dropped, its optimizer state
    is kept and reaches the next training step, so the run equals one at a single size."""
    from catdog import models

    rng = np.random.default_rng(4)
    x, y = rng.uniform(-1, 1, (4, 40, 40, 3)).astype(np.float32), rng.integers(0, 2, (4, 1))
    start = free_model((40, 40, 3)).get_weights()

    def compiled(shape):
        m = free_model(shape)
        m.set_weights(start)
        m.compile(optimizer="adam", loss=catdog.losses.BinaryCrossentropy(from_logits=True))
        return m

    free, fixed = compiled((None, None, 3)), compiled((40, 40, 3))
    free.train_on_batch(x, y)
    fixed.train_on_batch(x, y)
    for k in range(models.GRAPHS_KEPT + 2):  # predictions at other sizes evict the 40x40 graph
        free.predict(rng.uniform(-1, 1, (1, 44 + k, 44, 3)).astype(np.float32))
    assert (40, 40) not in free._other_graphs and free._opt_snapshot is not None
    free.train_on_batch(x, y)
    fixed.train_on_batch(x, y)
    for a, b in zip(free.get_weights(), fixed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_saved_free_model_loads_and_runs_at_any_size(tmp_path, ref):
    m = free_model()
    m.set_weights(keras_weights(ref))
    path = str(tmp_path / "free.keras")
    m.save(path)
    back = catdog.models.load_model(path)
    assert back.input_shape == (None, None, 3)
    for h, w in SIZES:
        x = ref[f"x/{h}x{w}"]
        np.testing.assert_array_equal(back.predict(x), m.predict(x))


def test_flatten_after_a_free_size_is_refused_at_build():
    inp = catdog.Input((None, None, 3))
    x = layers.Flatten()(layers.Conv2D(4, 3)(inp))
    with pytest.raises(ValueError, match=r"Dense 'd'.*must be defined.*GlobalAveragePooling2D"):
        layers.Dense(2, name="d")(x)


def test_too_small_an_image_is_a_clear_error_and_loses_nothing(ref):
    """No size bound of catdog's own (Keras has none): a size too small for a layer is
    refused as that size's graph is made, naming the layer; the model runs on afterwards."""
    inp = catdog.Input((None, None, 3))
    x = layers.Conv2D(4, 5, name="c5")(inp)
    m = catdog.Model(inp, layers.GlobalAveragePooling2D()(x))
    with pytest.raises(ValueError, match=r"layer 'c5': input 3x3 too small for kernel 5x5"):
        m.predict(np.zeros((1, 3, 3, 3), np.float32))
    assert m.predict(np.zeros((1, 5, 5, 3), np.float32)).shape == (1, 4)
    assert m.get_layer("c5").input_shape == (None, None, 3)
    small = free_model()
    small.set_weights(keras_weights(ref))
    assert small.predict(np.zeros((1, 1, 1, 3), np.float32)).shape == (1, 1)  # all "same"


@pytest.mark.parametrize("build, kwargs", [
    (applications.MobileNetV2, dict(alpha=0.35)),
    (applications.ResNet50, {}),
    (applications.MobileNetV3Small, {}),
    (applications.EfficientNetB0, {}),
    (applications.VGG16, {}),
])
def test_applications_default_to_a_free_size_without_the_top(build, kwargs):
    """Keras's obtain_input_shape: no input_shape, no top -> (None, None, 3); each runs at two
    sizes as the fixed-size build of that size does. (At an odd size they differ, in Keras
    too: imagenet_utils.correct_pad pads a free size as an even one.)"""
    m = build(include_top=False, weights=None, **kwargs)
    assert m.input_shape == (None, None, 3)
    rng = np.random.default_rng(0)
    # even sizes down to the last stride: Keras's correct_pad pads a free size as an even one
    for size in [(64, 64), (96, 128)]:
        x = rng.uniform(0, 1, (2, *size, 3)).astype(np.float32)
        fixed = build(include_top=False, weights=None, input_shape=size + (3,), **kwargs)
        fixed.set_weights(m.get_weights())
        np.testing.assert_array_equal(m.predict(x), fixed.predict(x))


def test_mobilenet_v3_is_free_even_with_its_top():
    """Keras's MobileNetV3 sets (None, None, 3) itself, top or not (mobilenet_v3.py)."""
    m = applications.MobileNetV3Small(weights=None)
    assert m.input_shape == (None, None, 3) and m.output_shape == (1000,)
    assert m.predict(np.zeros((1, 64, 80, 3), np.float32)).shape == (1, 1000)


def test_a_top_needs_a_static_size():
    with pytest.raises(ValueError, match="If `include_top` is True, you should specify a static"):
        applications.ResNet50(weights=None, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="If `include_top` is True, you should specify a static"):
        applications.MobileNetV2(weights=None, input_shape=(None, None, 3))


def test_resnet50_imagenet_without_input_shape_then_fit_at_160(monkeypatch, tmp_path):
    """The issue's example: ResNet50(include_top=False, weights="imagenet") (free size; the
    file served from a loopback server with its hash), the lab's head, fit on 160x160 images:
    the same bits as the fixed 160x160 build."""
    src = applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    rng = np.random.default_rng(5)
    src.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32) for w in src.get_weights()])
    path = tmp_path / "notop.h5"
    src.save_weights(str(path))
    body = path.read_bytes()
    name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    server = LocalServer()
    try:
        _serve(server, monkeypatch, name, body, hashlib.md5(body).hexdigest())
        x = rng.uniform(-1, 1, (4, 160, 160, 3)).astype(np.float32)
        y = np.array([[0], [1], [1], [0]])
        results = []
        for shape in (None, (160, 160, 3)):
            base = applications.ResNet50(include_top=False, weights="imagenet", input_shape=shape)
            assert base.input_shape == (shape or (None, None, 3))
            base.trainable = False
            inp = catdog.Input(shape or (None, None, 3))
            out = layers.Dense(1)(layers.GlobalAveragePooling2D()(base(inp, training=False)))
            model = catdog.Model(inp, out)
            model.layers[-1].set_weights([np.full((2048, 1), 0.01, np.float32),
                                          np.zeros(1, np.float32)])
            model.compile(optimizer=catdog.optimizers.Adam(1e-3),
                          loss=catdog.losses.BinaryCrossentropy(from_logits=True))
            model.fit(x, y, batch_size=2, epochs=1, verbose=0)
            results.append(model.get_weights())
    finally:
        server.stop()
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_onnx_export_of_a_free_size_runs_at_each_size(tmp_path, ref):
    """"same" on a free size is ONNX's auto_pad SAME_UPPER (TF's rule): ONNX Runtime matches
    predict at odd, even and non-square sizes."""
    pytest.importorskip("onnx", reason="pip install catdog[onnx] (the test extra has it)")
    ort = pytest.importorskip("onnxruntime", reason="the test extra installs onnxruntime")
    m = free_model()
    m.set_weights(keras_weights(ref))
    path = str(tmp_path / "free.onnx")
    m.export(path, format="onnx")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for h, w in SIZES:
        x = ref[f"x/{h}x{w}"]
        assert_close_rel(sess.run(None, {name: x})[0], m.predict(x), 1e-5, f"{h}x{w}")


def test_a_free_base_called_on_a_sized_input_has_that_size():
    """The tutorial's pattern with a free base: base(Input((96, 96, 3))) has 96's output
    shape (3, 3, 1280), as Keras computes it, so Flatten + Dense on top has a length; the
    outer model runs the base's layers at 96 while the base itself stays free."""
    base = applications.MobileNetV2(include_top=False, weights=None, alpha=0.35)
    inp = catdog.Input((96, 96, 3))
    y = base(inp, training=False)
    assert y.shape == (3, 3, 1280) and base.output_shape == (None, None, 1280)
    model = catdog.Model(inp, layers.Dense(1)(layers.Flatten()(y)))
    assert model.count_params() == base.count_params() + 3 * 3 * 1280 + 1
    x = np.random.default_rng(1).uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)
    feats = base.predict(x)
    head = model.layers[-1].get_weights()
    np.testing.assert_allclose(model.predict(x), feats.reshape(2, -1) @ head[0] + head[1],
                               rtol=1e-5, atol=1e-5)
    assert base.predict(np.zeros((1, 64, 64, 3), np.float32)).shape == (1, 2, 2, 1280)
