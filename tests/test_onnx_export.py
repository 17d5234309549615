"""model.export("x.onnx", format="onnx") (catdog/saving/onnx_export.py), run by ONNX Runtime
and compared with catdog's predict (1e-5 relative, the issue's bound).

Keras's own exporter is keras/src/export/onnx.py (`export_onnx`, via tf2onnx for the TF
backend); as there, the file is the inference graph with a dynamic batch axis. catdog's
input stays NHWC, as its predict takes it."""
import os
import sys

import numpy as np
import pytest

import catdog
from conftest import SHARED_WEIGHTS, assert_close_rel, needs_shared_weights

onnx = pytest.importorskip("onnx", reason="pip install catdog[onnx] (the test extra has it)")
ort = pytest.importorskip("onnxruntime", reason="the test extra installs onnxruntime")

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_saving")
IO = dict(np.load(os.path.join(FIX, "saving_io.npz")))
REL = 1e-5


def run(path, x):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {"inputs": np.asarray(x, np.float32)})[0]


@pytest.mark.parametrize("name", ["lab_a035_32.keras", "mnv2_top_a035_32.keras", "cnn_seq.keras"])
def test_onnx_runtime_matches_predict(name, tmp_path):
    model = catdog.models.load_model(os.path.join(FIX, name))
    path = tmp_path / "m.onnx"
    model.export(path, format="onnx")
    x = IO["x/" + name]
    want = model.predict(x)
    assert_close_rel(run(path, x), want, REL, name)
    assert_close_rel(run(path, x[:1]), want[:1], REL, name + " batch 1")  # dynamic batch
    proto = onnx.load(str(path))
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [32, 32, 3]
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Dropout", "RandomUniform", "RandomNormal"}
    if name.startswith("lab"):  # augmentation and Dropout are identity; BN stays BN
        assert "BatchNormalization" in ops and "Clip" in ops and "Pad" in ops
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_catdog_trained_lab_model(tmp_path):
    """A model catdog built and trained (one step), Sequential augmentation included."""
    from catdog import layers

    catdog.random.set_seed(9)
    base = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           include_top=False, weights=None)
    inputs = catdog.Input((32, 32, 3))
    x = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])(inputs)
    x = catdog.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(x))
    model = catdog.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(1)
    xs = rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    model.train_on_batch(xs, np.array([0, 1, 1, 0]))
    model.export(tmp_path / "lab.onnx")
    assert_close_rel(run(tmp_path / "lab.onnx", xs), model.predict(xs), REL, "trained lab")


@needs_shared_weights
def test_imagenet_mobilenet_v2_at_160(tmp_path):
    base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False,
                                           weights=str(SHARED_WEIGHTS))
    x = np.random.default_rng(2).uniform(-1, 1, (2, 160, 160, 3)).astype(np.float32)
    base.export(tmp_path / "base.onnx")
    got = run(tmp_path / "base.onnx", x)
    assert got.shape == (2, 5, 5, 1280)
    assert_close_rel(got, base.predict(x), REL, "ImageNet MobileNetV2 160")


def test_without_onnx_says_what_to_install(tmp_path, monkeypatch):
    model = catdog.models.load_model(os.path.join(FIX, "cnn_seq.keras"))
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(ImportError, match=r"pip install catdog\[onnx\]"):
        model.export(tmp_path / "m.onnx", format="onnx")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="format='onnx'"):
        model.export(tmp_path / "m", format="tf_saved_model")
