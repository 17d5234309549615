"""Whole models in Keras 3's `.keras` format, both ways (catdog/saving/).

Fixtures: tests/fixtures/make_saving_fixtures.py (TensorFlow 2.21 / Keras 3.15 wrote the
files and recorded predictions). The format is Keras's: keras/src/saving/saving_lib.py
(zip with config.json, metadata.json, model.weights.h5), serialization_lib.py (object
dicts), keras/src/models/functional.py get_config (layers with inbound_nodes).

* Keras -> catdog: load_model on Keras's files predicts what Keras predicted (1e-5
  relative), compiles with the saved optimizer / loss / metric, honours compile=False.
* catdog -> Keras: catdog's re-save of Keras's file has Keras's config.json (the same
  objects, classes, keys and values up to the differences listed in ALLOWED) and the same
  model.weights.h5 layout; TensorFlow loading catdog's files is checked by
  benchmarks/check_keras_saving.py (TF runs from its own venv, never here).
"""
import json
import os
import zipfile

import h5py
import numpy as np
import pytest

import catdog
from catdog import layers
from catdog.saving.serialization import ConfigError
from conftest import assert_close_rel

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_saving")
IO = dict(np.load(os.path.join(FIX, "saving_io.npz")))
FILES = ("lab_a035_32.keras", "mnv2_top_a035_32.keras", "cnn_seq.keras")
REL = 1e-5

_CACHE = {}


def loaded(name):
    if name not in _CACHE:
        _CACHE[name] = catdog.models.load_model(os.path.join(FIX, name))
    return _CACHE[name]


@pytest.mark.parametrize("name", FILES)
def test_keras_file_loads_and_predicts_as_keras(name):
    model = loaded(name)
    assert_close_rel(model.predict(IO["x/" + name]), IO["pred/" + name], REL, name)


def test_lab_file_structure_and_compile():
    model = loaded("lab_a035_32.keras")
    # preprocess_input's x / 127.5 - 1 are operations, not layers (Keras's Functional.layers
    # lists Layer instances only: keras/src/models/functional.py)
    assert [type(l).__name__ for l in model.layers] == [
        "InputLayer", "Sequential", "Model", "GlobalAveragePooling2D", "Dropout", "Dense"]
    ops = [t.layer for t in model._nodes if getattr(t.layer, "is_operation", False)]
    assert [(op.name, op.keras_op, op.constant) for op in ops] == [
        ("true_divide", "TrueDivide", 127.5), ("subtract", "Subtract", 1.0)]
    base = model.layers[2]
    assert base.name == "mobilenetv2_0.35_32" and base.trainable is False
    assert len(base.layers) == 154 and base.layers[100].name == "block_11_expand_relu"
    assert len(model.trainable_weights) == 2  # the Dense head: the base is frozen
    node = [t for t in model._nodes if t.layer is base][0]
    assert node.training is False  # base_model(x, training=False)
    opt = model._compiled.optimizer
    assert type(opt).__name__ == "Adam" and opt.learning_rate == pytest.approx(1e-3)
    assert model._compiled.loss.from_logits is True
    assert model._compiled.metrics[0].threshold == 0 and model._compiled.metrics[0].name == "accuracy"
    aug = model.layers[1]
    assert [type(l).__name__ for l in aug.layers] == ["RandomFlip", "RandomRotation"]
    assert (aug.layers[1].lower, aug.layers[1].upper) == (-0.2, 0.2)


def test_compile_false_is_honoured_and_training_runs():
    path = os.path.join(FIX, "cnn_seq.keras")
    assert catdog.models.load_model(path, compile=False)._compiled is None
    model = catdog.models.load_model(path)
    assert type(model._compiled.optimizer).__name__ == "RMSprop"
    x = IO["x/cnn_seq.keras"]
    loss, acc = model.train_on_batch(x, np.array([0, 1, 2]))
    assert np.isfinite(loss) and 0 <= acc <= 1


# ---- catdog -> Keras's format ------------------------------------------------------------
# What may differ between Keras's config.json and catdog's re-save of it:
#   shared_object_id (Keras's object ids); the Sequential's implicit input layer's name;
#   the `training: false` Keras records on a single layer's call (catdog keeps `training`
#   only on nested models: Keras's fit overrides it on layers anyway); 0 vs 0.0.
ALLOWED = ("shared_object_id",)


def _norm(c):
    if isinstance(c, dict):
        return {k: _norm(v) for k, v in c.items() if k not in ALLOWED}
    if isinstance(c, list):
        return [_norm(v) for v in c]
    if isinstance(c, (int, float)) and not isinstance(c, bool):
        return float(c)
    return c


def _diffs(a, b, path=""):
    out = []
    if type(a) is not type(b):
        return [f"{path}: {str(a)[:60]} vs {str(b)[:60]}"]
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'keras' if k in b else 'catdog'}")
            else:
                out += _diffs(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        for i, (x, y) in enumerate(zip(a, b)):
            out += _diffs(x, y, f"{path}[{i}]")
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}")
    return out


def _h5_layout(data):
    import io

    tree = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(lambda n, o: tree.__setitem__(
            n, o.shape if isinstance(o, h5py.Dataset) else dict(o.attrs).get("name")))
    return {k: v for k, v in tree.items() if not k.startswith("optimizer")}


@pytest.mark.parametrize("name", FILES)
def test_resave_writes_keras_config_and_layout(name, tmp_path):
    out = tmp_path / name
    loaded(name).save(out)
    theirs, ours = zipfile.ZipFile(os.path.join(FIX, name)), zipfile.ZipFile(out)
    assert sorted(ours.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in ours.infolist())
    a, b = (_norm(json.loads(z.read("config.json"))) for z in (ours, theirs))
    diffs = [d for d in _diffs(a, b)
             if not d.endswith("/kwargs/training: only in keras")
             and not ("/layers[0]/config/name:" in d and "_input" in d)]
    assert diffs == []
    assert json.loads(ours.read("metadata.json"))["keras_version"].startswith("3.")
    assert _h5_layout(ours.read("model.weights.h5")) == _h5_layout(theirs.read("model.weights.h5"))
    again = catdog.models.load_model(out)
    assert_close_rel(again.predict(IO["x/" + name]), IO["pred/" + name], REL, name)


def _small_cnn():
    catdog.random.set_seed(3)
    return catdog.Sequential([
        catdog.Input((32, 32, 3)), layers.Rescaling(1.0 / 255),
        layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(), layers.ReLU(6.0),
        layers.MaxPooling2D(), layers.GlobalAveragePooling2D(), layers.Dropout(0.1),
        layers.Dense(2, activation="softmax")], name="small")


def test_catdog_model_round_trip_and_atomic_save(tmp_path, monkeypatch):
    model = _small_cnn()
    model.compile(optimizer=catdog.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    model.train_on_batch(x, np.array([0, 1, 1, 0]))
    path = tmp_path / "m.keras"
    model.save(path)
    old = path.read_bytes()
    back = catdog.models.load_model(path)
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-6, atol=1e-7)
    opt = back._compiled.optimizer
    assert (type(opt).__name__, opt.learning_rate, opt.momentum) == ("SGD", 0.05, 0.9)
    # a crash mid-write leaves the old file intact and no temp file behind
    import catdog.saving.keras_format as kf

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(kf, "_h5_bytes", boom)
    with pytest.raises(RuntimeError):
        model.save(path)
    monkeypatch.undo()

    real = zipfile.ZipFile.writestr
    calls = []

    def dies_late(self, name, data, *a, **k):
        calls.append(name)
        if name == "model.weights.h5":
            raise OSError("killed mid-write")
        return real(self, name, data, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", dies_late)
    with pytest.raises(OSError):
        model.save(path)
    monkeypatch.undo()
    assert "config.json" in calls and path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]
    with pytest.raises(ValueError, match=r"\.keras"):
        model.save(tmp_path / "m.h5")


def test_to_json_and_model_from_json():
    model = _small_cnn()
    text = model.to_json()
    cfg = json.loads(text)
    assert cfg["class_name"] == "Sequential" and cfg["module"] == "keras"
    again = catdog.models.model_from_json(text)
    assert [type(l).__name__ for l in again.layers] == [type(l).__name__ for l in model.layers]
    assert [w.shape for w in again.get_weights()] == [w.shape for w in model.get_weights()]
    assert again.to_json() == text
    conf = model.get_config()
    assert type(model).from_config(conf).count_params() == model.count_params()
    # Keras's own to_json of the lab is read too (the config inside its .keras file)
    keras_cfg = zipfile.ZipFile(os.path.join(FIX, "lab_a035_32.keras")).read("config.json")
    lab = catdog.models.model_from_json(keras_cfg.decode())
    assert lab.count_params() == loaded("lab_a035_32.keras").count_params()


def test_unsupported_layer_names_class_and_layer():
    model = _small_cnn()
    cfg = json.loads(model.to_json())
    cfg["config"]["layers"][3] = {"module": "keras.layers", "class_name": "LSTM",
                                  "config": {"name": "my_lstm", "units": 3},
                                  "registered_name": None}
    with pytest.raises(ConfigError, match=r"'my_lstm'.*Keras LSTM.*does not support"):
        catdog.models.model_from_json(json.dumps(cfg))
    cfg = json.loads(model.to_json())
    cfg["config"]["layers"][2]["config"]["activation"] = "mish"  # an activation catdog lacks
    with pytest.raises(ConfigError, match=r"layer 'conv2d.*activation='mish'"):
        catdog.models.model_from_json(json.dumps(cfg))


# ---- the optimizer's state (catdog/saving/optimizer_state.py) -----------------------------
@pytest.mark.parametrize("name", ["resume_adam.keras", "resume_rmsprop.keras"])
def test_training_resumes_where_keras_stopped(name):
    """Keras trained two steps and saved; its third step on the same batch is the reference.
    catdog's third step after load_model gives the same update; with a fresh optimizer (what
    compile() gives) it would not: Adam's first step moves every weight by ~lr."""
    x, y = IO["x/" + name], IO["y/" + name]
    n = len([k for k in IO if k.startswith(f"before/{name}/")])
    before = [IO[f"before/{name}/{i}"] for i in range(n)]
    after = [IO[f"after/{name}/{i}"] for i in range(n)]
    model = catdog.models.load_model(os.path.join(FIX, name))
    assert_close_rel(model.predict(x), IO["pred/" + name], REL, name)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model._graph.opt_iterations() == 2
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(float(IO["loss3/" + name]), rel=1e-4)
    for i, (w, b, a) in enumerate(zip(model.get_weights(), before, after)):
        if i == 1:  # the conv bias before BN: its gradient is rounding noise in both
            continue
        assert_close_rel(w - b, a - b, 1e-2, f"{name} weight {i}: the resumed step")
    fresh = catdog.models.load_model(os.path.join(FIX, name), compile=False)
    fresh.compile(optimizer=type(model._compiled.optimizer)(1e-2), loss="sparse_categorical_crossentropy")
    fresh.train_on_batch(x, y)
    # the Conv2D kernel (weight 0): a fresh optimizer's step is far from Keras's third step
    moved = fresh.get_weights()[0] - before[0]
    assert np.abs(moved - (after[0] - before[0])).max() > 10 * np.abs(
        model.get_weights()[0] - after[0]).max()


def test_catdog_saves_its_optimizer_state(tmp_path):
    """catdog -> file -> catdog: the restored state makes the next step the same bits."""
    name = "resume_adam.keras"
    x, y = IO["x/" + name], IO["y/" + name]
    a = catdog.models.load_model(os.path.join(FIX, name))
    a.train_on_batch(x, y)
    a.save(tmp_path / "a.keras")
    with h5py.File(__import__("io").BytesIO(
            zipfile.ZipFile(tmp_path / "a.keras").read("model.weights.h5")), "r") as f:
        g = f["optimizer/vars"]
        assert g.attrs["name"] == a._compiled.optimizer.name
        assert g["0"][()] == 3 and g["0"].dtype == np.int64
        assert g["1"].dtype == np.float32 and len(g) == 2 + 2 * 6  # m, v per trainable weight
    b = catdog.models.load_model(tmp_path / "a.keras")
    a.train_on_batch(x, y)
    b.train_on_batch(x, y)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_layer_get_config_from_config():
    """Every registered layer class: from_config(get_config()) gives the same config (the
    keys of keras/src/layers/*: e.g. Conv2D's filters, kernel_size, strides, padding, ...)."""
    lab = loaded("lab_a035_32.keras")
    leaves = [l for l in lab._leaf_layers()] + list(lab.layers[1].layers)
    leaves += list(_small_cnn().layers) + [
        layers.RandomZoom(0.1, 0.2, fill_mode="nearest"), layers.RandomTranslation(0.1, 0.2),
        layers.AveragePooling2D(3, strides=1, padding="same")]
    seen = set()
    for layer in leaves:
        if type(layer).__name__ == "InputLayer" or getattr(layer, "is_operation", False):
            continue  # an input, or a keras.ops call (an operation, not a layer, in Keras)
        cfg = layer.get_config()
        again = type(layer).from_config(cfg)
        assert again.get_config() == cfg, type(layer).__name__
        seen.add(type(layer).__name__)
    assert {"Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "ZeroPadding2D", "Add",
            "GlobalAveragePooling2D", "Dropout", "Dense", "Rescaling", "RandomFlip",
            "RandomRotation", "RandomZoom", "RandomTranslation", "MaxPooling2D",
            "AveragePooling2D"} <= seen
    conv = lab.layers[2].get_layer("Conv1").get_config()
    assert (conv["filters"], conv["kernel_size"], conv["strides"], conv["padding"],
            conv["use_bias"], conv["trainable"]) == (16, [3, 3], [2, 2], "same", False, False)
