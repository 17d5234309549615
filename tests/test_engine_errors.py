"""Bad input gets a clear Python exception and changes nothing; never a crash."""
import numpy as np
import pytest

import catdog
from catdog import _engine, layers


@pytest.fixture(scope="module")
def small():
    base = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           include_top=False, weights=None)
    inputs = catdog.Input((32, 32, 3))
    x = base(inputs, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(1)(x)
    return base, catdog.Model(inputs, out)


def test_wrong_input_shape(small):
    _, model = small
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 32, 32, 3\)"):
        model.predict_on_batch(np.zeros((2, 31, 32, 3), np.float32))
    g = model._ensure_graph()
    with pytest.raises(ValueError, match="model expects"):
        g.forward(np.zeros((2, 32, 33, 3), np.float32), False)


def test_engine_rejects_dtype_noncontiguous(small):
    _, model = small
    g = model._ensure_graph()
    with pytest.raises(ValueError, match="float32"):
        g.forward(np.zeros((2, 32, 32, 3), np.float64), False)
    with pytest.raises(ValueError, match="C-contiguous"):
        g.forward(np.zeros((2, 32, 64, 3), np.float32)[:, :, ::2], False)
    with pytest.raises(TypeError, match="ndarray"):
        g.forward([[1.0]], False)
    bad_keep = max(_engine.KEEP_ALL, _engine.KEEP_FOR_BACKWARD, _engine.KEEP_LAST) + 1
    with pytest.raises(ValueError, match="keep must be KEEP_ALL .*, KEEP_FOR_BACKWARD .* or KEEP_LAST"):
        g.forward(np.zeros((2, 32, 32, 3), np.float32), False, bad_keep)
    with pytest.raises(ValueError, match="inference only"):
        g.forward(np.zeros((2, 32, 32, 3), np.float32), True, _engine.KEEP_LAST)


def test_api_converts_dtype_and_layout_and_reads_readonly(small):
    _, model = small
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 64, 3))[:, :, ::2]  # float64, strided
    x.setflags(write=False)
    a = model.predict_on_batch(x)
    b = model.predict_on_batch(np.ascontiguousarray(x, np.float32))
    np.testing.assert_array_equal(a, b)


def test_nan_input_rejected(small):
    _, model = small
    x = np.zeros((1, 32, 32, 3), np.float32)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict_on_batch(x)


def test_alpha_and_size_out_of_range():
    with pytest.raises(ValueError, match="alpha"):
        catdog.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.6, weights=None)
    with pytest.raises(ValueError, match="at least 32"):
        catdog.applications.MobileNetV2(input_shape=(31, 96, 3), weights=None)
    with pytest.raises(ValueError, match=r"\(height, width, 3\)"):
        catdog.applications.MobileNetV2(input_shape=(96, 96, 1), weights=None)


def test_unknown_layer_names(small):
    base, model = small
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        base.get_layer("nope")
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        base.layer_outputs(np.zeros((1, 32, 32, 3), np.float32), ["nope"])


def test_weight_shape_and_dtype_errors_name_layer_and_weight(small):
    base, _ = small
    conv = base.get_layer("Conv1")
    with pytest.raises(ValueError, match=r"layer 'Conv1' weight 'kernel' has shape \(3, 3, 3, 16\)"):
        conv.set_weights([np.zeros((3, 3, 3, 8), np.float32)])
    with pytest.raises(ValueError, match="expects 1 weights"):
        conv.set_weights([])
    with pytest.raises(ValueError, match="not numeric"):
        conv.set_weights([np.full((3, 3, 3, 16), "a")])
    g = base._ensure_graph()
    with pytest.raises(ValueError, match=r"weight 'kernel' of layer 'Conv1' must have dtype float32"):
        g.set_weight(1, 0, np.zeros((3, 3, 3, 16), np.float64))
    with pytest.raises(ValueError, match=r"layer 'Conv1' weight 'kernel' has shape \(3, 3, 3, 16\), got \(16, 3, 3, 3\)"):
        g.set_weight(1, 0, np.zeros((16, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="out of range"):
        g.get_weight(1, 5)


def test_weights_file_missing_or_mismatched(tmp_path, small):
    base, _ = small
    with pytest.raises(FileNotFoundError):
        base.load_weights(tmp_path / "missing.h5")
    other = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.5,
                                            include_top=False, weights=None)
    path = tmp_path / "a050.h5"
    other.save_weights(path)
    before = base.get_layer("Conv1").get_weights()[0]
    with pytest.raises(ValueError, match="shape"):
        base.load_weights(path)
    np.testing.assert_array_equal(base.get_layer("Conv1").get_weights()[0], before)
    top = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                          include_top=True, weights=None, classes=3)
    top_path = tmp_path / "top.npz"
    top.save_weights(top_path)
    with pytest.raises(ValueError, match="unexpected layers 'predictions'"):
        base.load_weights(top_path)


def test_save_load_round_trip(tmp_path, small):
    base, _ = small
    for name in ("w.h5", "w.npz"):
        base.save_weights(tmp_path / name)
        copy = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                               include_top=False, weights=str(tmp_path / name))
        for a, b in zip(base.get_weights(), copy.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_nan_loss_stops_with_step_and_keeps_weights(small):
    base, model = small
    base.trainable = False
    model.compile(optimizer=catdog.optimizers.SGD(learning_rate=0.1),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    y = np.array([0, 1, 0, 1], np.float32)
    model.train_on_batch(x, y)
    bn = base.get_layer("Conv_1_bn")  # features become exactly 5 ...
    bn.set_weights([np.zeros(1280), np.full(1280, 5.0), np.zeros(1280), np.ones(1280)])
    dense = model.layers[-1]  # ... and 5 * 3e38 * 1280 overflows to inf
    dense.set_weights([np.full((1280, 1), 3e38, np.float32), np.zeros(1, np.float32)])
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(FloatingPointError, match=r"loss is (NaN|infinite) at training step 2"):
        model.train_on_batch(x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_nan_loss_in_a_micro_batched_fine_tuning_step_keeps_weights():
    """The same when the trainable part runs in micro-batches (fine-tuning from layer 100 at
    batch 20 = 16 + 4): the loss is known only after every micro-batch's backward, and the
    optimizer must still not move anything."""
    base = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           include_top=False, weights=None)
    inputs = catdog.Input((32, 32, 3))
    x = base(inputs, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    model = catdog.Model(inputs, layers.Dense(1)(x))
    base.trainable = True
    for layer in base.layers[:100]:
        layer.trainable = False
    model.compile(optimizer=catdog.optimizers.RMSprop(learning_rate=1e-3),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    x = np.random.default_rng(2).uniform(0, 255, (20, 32, 32, 3)).astype(np.float32)
    y = (np.arange(20) % 2).astype(np.float32)
    model.train_on_batch(x, y)
    base.get_layer("Conv_1_bn").set_weights([np.zeros(1280), np.full(1280, 5.0), np.zeros(1280),
                                            np.ones(1280)])
    model.layers[-1].set_weights([np.full((1280, 1), 3e38, np.float32), np.zeros(1, np.float32)])
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(FloatingPointError, match=r"loss is (NaN|infinite) at training step 2"):
        model.train_on_batch(x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    g = model._graph  # and the step did run in micro-batches: kept buffers hold 16 samples
    infos = [g.layer_info(k) for k in range(g.num_layers())]
    assert any(i["needs_grad"] and i["kept_floats"] == 16 * int(np.prod(i["shape"]))
               for i in infos)


def test_labels_checked(small):
    _, model = small
    model.compile(optimizer="adam", loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="2 images and 3 labels"):
        model.train_on_batch(np.zeros((2, 32, 32, 3), np.float32), [0, 1, 1])
    with pytest.raises(ValueError, match="label"):
        _engine.loss(_engine.LOSS_SPARSE_CE_LOGITS, np.zeros((2, 3), np.float32),
                     np.array([0, 3], np.float32))


def test_uncompiled_and_graph_errors(small):
    _, model = small
    fresh = catdog.Model(model._input, model._output)
    with pytest.raises(RuntimeError, match="compiled"):
        fresh.evaluate(np.zeros((1, 32, 32, 3), np.float32), np.zeros(1))
    g = _engine.Graph()
    with pytest.raises(ValueError, match="input layer first"):
        g.add_layer("GlobalAveragePooling2D", "gap", (0,))
    g.add_layer("InputLayer", "in", (), shape=(8, 8, 3))
    with pytest.raises(ValueError, match="duplicate layer name"):
        g.add_layer("InputLayer", "in", (), shape=(8, 8, 3))
    with pytest.raises(ValueError, match="Dense needs a 2-D"):
        g.add_layer("Dense", "d", (0,), units=1, use_bias=True, activation=_engine.ACT_NONE)
    with pytest.raises(RuntimeError, match="forward pass"):
        g.backward(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="dropout rate"):
        g.add_layer("Dropout", "drop", (0,), rate=1.0)
    # the generic builder names what is wrong: kind, key, count, type
    with pytest.raises(ValueError, match="unknown layer kind 'Conv3D'"):
        g.add_layer("Conv3D", "c3", (0,))
    with pytest.raises(ValueError, match="has no hyperparameter 'dilations'"):
        g.add_layer("Conv2D", "c", (0,), filters=4, kernel=(3, 3), dilations=(2, 2))
    with pytest.raises(ValueError, match="'kernel' takes 2 values, got 1"):
        g.add_layer("Conv2D", "c", (0,), filters=4, kernel=3)
    with pytest.raises(ValueError, match="'filters' must be integers"):
        g.add_layer("Conv2D", "c", (0,), filters=4.5, kernel=(3, 3))
    with pytest.raises(ValueError, match="'filters' is required"):
        g.add_layer("Conv2D", "c", (0,), kernel=(3, 3))
    assert g.num_layers() == 1  # nothing half-built was kept


def test_allocation_failure_is_memory_error():
    g = _engine.Graph()
    g.add_layer("InputLayer", "in", (), shape=(16384, 16384, 64))
    with pytest.raises(MemoryError):
        g.add_layer("Conv2D", "c", (0,), filters=65536, kernel=(64, 64), use_bias=False)


def test_engine_layer_not_supported_names_layer():
    class Weird(catdog.layers.Layer):
        pass

    inp = catdog.Input((8, 8, 3))
    out = Weird(name="weird_layer")(inp)
    with pytest.raises(ValueError, match="weird_layer"):
        catdog.Model(inp, out).predict_on_batch(np.zeros((1, 8, 8, 3), np.float32))
