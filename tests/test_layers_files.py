"""Keras's files of a model with every layer of tests/test_layers_*.py (RandomContrast,
RandomBrightness, Resizing with crop, an adapted Normalization whose count is an int64 in the
files, a dilated Conv2D, BatchNormalization without gamma and without beta, a grouped Conv2D, a
5x5 stride-2 DepthwiseConv2D with depth_multiplier and swish): its Keras 3 .weights.h5, its legacy
h5 and its .keras file load into catdog and predict as Keras (tests/fixtures/make_layers_fixtures.py
files, Keras 3.15 / TF 2.21), and catdog writes them back."""
import os

import numpy as np
import pytest

import catdog
from catdog import _engine
from catdog import layers as L
from conftest import assert_close_rel
from layers_common import load

IO = load("files")
FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_saving")


def files_model():
    """The fixture script's files_model, spelled for catdog."""
    inputs = catdog.Input((12, 10, 3), name="image")
    x = L.RandomContrast(0.2, name="contrast")(inputs)
    x = L.RandomBrightness(0.1, name="brightness")(x)
    x = L.Resizing(9, 9, crop_to_aspect_ratio=True, name="resize")(x)
    x = L.Normalization(name="norm")(x)
    x = L.Conv2D(6, 3, padding="same", dilation_rate=2, use_bias=False, name="dilated")(x)
    x = L.BatchNormalization(scale=False, name="bn_noscale")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(6, 3, groups=3, name="grouped")(x)
    x = L.DepthwiseConv2D(5, strides=2, padding="same", depth_multiplier=2, activation="swish",
                          name="dw5")(x)
    x = L.BatchNormalization(center=False, name="bn_nocenter")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return catdog.Model(inputs, L.Dense(2, name="head")(x), name="layers_model")


@pytest.mark.parametrize("name", ["layers_model.weights.h5", "layers_model_legacy.h5"])
def test_weight_files_load_and_predict_as_keras(name, tmp_path):
    model = files_model()
    model.load_weights(os.path.join(FIX, name))
    assert_close_rel(model.predict_on_batch(IO["x"]), IO["pred"], 1e-5, "predictions")
    assert model.get_layer("norm").get_weights()[2].shape == ()
    # written back by catdog in the same format, read again
    again = files_model()
    path = tmp_path / name
    model.save_weights(path)
    again.load_weights(path)
    np.testing.assert_array_equal(again.predict_on_batch(IO["x"]),
                                  model.predict_on_batch(IO["x"]))


def test_keras_file_loads_and_predicts_as_keras(tmp_path):
    model = catdog.models.load_model(os.path.join(FIX, "layers_model.keras"))
    assert_close_rel(model.predict(IO["x"], verbose=0), IO["pred"], 1e-5, "predictions")
    assert model.count_params() == files_model().count_params()
    assert model.get_layer("grouped").groups == 3
    assert model.get_layer("dw5").depth_multiplier == 2
    assert not model.get_layer("bn_nocenter").center
    model.save(tmp_path / "again.keras")
    again = catdog.models.load_model(tmp_path / "again.keras")
    np.testing.assert_array_equal(again.predict_on_batch(IO["x"]), model.predict_on_batch(IO["x"]))


def test_resize_and_normalization_join_the_micro_batched_prefix():
    """Per-sample kinds: a predict plan runs them in the frozen prefix's micro-batched segment
    with the fused block after them, and on through the pooling up to the kept logits."""
    inputs = catdog.Input((32, 32, 3))
    norm = L.Normalization()
    norm.adapt(np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)))
    x = L.Resizing(24, 24)(norm(inputs))
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(8, 3, use_bias=False)(x)))
    model = catdog.Model(inputs, L.Dense(1)(L.GlobalAveragePooling2D()(x)))
    for layer in model.layers[:-1]:
        layer.trainable = False
    g = model._ensure_graph()
    text = g.describe_plan(64, False, _engine.KEEP_LAST)
    lines = text.splitlines()
    assert lines[1].startswith("segment 0-6 "), text  # input, norm, resize, conv-bn-relu, GAP
    assert [l.split()[2] for l in lines[3:5]] == ["Normalization", "Resizing"], text


def test_onnx_export_runs_as_predict(tmp_path):
    """model.export(format="onnx") of the files model (crop Resizing, adapted Normalization,
    dilated / grouped / depth-multiplied convs, BN without gamma or beta) and of one with a
    padding Resizing and an inverting Normalization given constants: ONNX Runtime's outputs
    equal catdog's predict within 1e-5 (the export's bound, tests/test_onnx_export.py)."""
    pytest.importorskip("onnx", reason="pip install catdog[onnx] (the test extra has it)")
    ort = pytest.importorskip("onnxruntime", reason="the test extra installs onnxruntime")
    model = files_model()
    model.load_weights(os.path.join(FIX, "layers_model.weights.h5"))
    inputs = catdog.Input((10, 6, 3))
    x = L.Resizing(4, 8, pad_to_aspect_ratio=True, fill_value=0.5)(inputs)
    x = L.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.0, 9.0], invert=True)(x)
    padded = catdog.Model(inputs, L.DepthwiseConv2D(3, padding="same", dilation_rate=2)(x))
    rng = np.random.default_rng(3)
    for m, xb in ((model, IO["x"]), (padded, rng.uniform(0, 1, (2, 10, 6, 3)))):
        path = tmp_path / f"{m.name}.onnx"
        m.export(path, format="onnx")
        xb = np.asarray(xb, np.float32)
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = s.run(None, {"inputs": xb})[0]
        assert_close_rel(got, m.predict_on_batch(xb), 1e-5, m.name)


@pytest.mark.parametrize("act", ["relu", "relu6", "sigmoid", "tanh", "softmax", "swish",
                                 "hard_sigmoid", "hard_swish", "gelu", "elu", "selu", "softplus"])
def test_onnx_export_of_activations(act, tmp_path):
    """activation= on Conv2D and Dense and the Activation layer export as ONNX ops (the
    export used to drop a conv's activation)."""
    pytest.importorskip("onnx", reason="pip install catdog[onnx] (the test extra has it)")
    ort = pytest.importorskip("onnxruntime", reason="the test extra installs onnxruntime")
    catdog.random.set_seed(4)
    inputs = catdog.Input((6, 6, 3))
    x = L.Conv2D(4, 3, activation=act)(inputs)
    x = L.Activation(act)(L.DepthwiseConv2D(3, padding="same")(x))
    model = catdog.Model(inputs, L.Dense(3, activation=act)(L.GlobalAveragePooling2D()(x)))
    xb = np.random.default_rng(0).normal(0, 2, (2, 6, 6, 3)).astype(np.float32)
    model.export(tmp_path / "a.onnx", format="onnx")
    s = ort.InferenceSession(str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"])
    assert_close_rel(s.run(None, {"inputs": xb})[0], model.predict_on_batch(xb), 1e-5, act)
