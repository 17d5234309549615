"""`.keras` files with the layers of issue 22 (activations, Flatten, SeparableConv2D, Multiply,
GlobalMaxPooling2D, Reshape, the merging layers, Dropout(noise_shape)): Keras's file loads and
predicts as Keras (fixture by tests/fixtures/make_layer_saving_fixtures.py, TensorFlow 2.21 /
Keras 3.15, format per keras/src/saving/saving_lib.py), and catdog's own file of it loads back
with the same predictions and config."""
import json
import os
import zipfile

import numpy as np

import catdog
from conftest import assert_close_rel

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_saving")
IO = np.load(os.path.join(FIX, "layers_io.npz"))


def test_keras_file_with_issue_22_layers_loads_and_predicts_as_keras():
    model = catdog.models.load_model(os.path.join(FIX, "layers_cnn.keras"))
    assert type(model.get_layer("sep")).__name__ == "SeparableConv2D"
    assert model.get_layer("conv").activation == "relu"
    assert model.get_layer("se_gate").activation == "hard_sigmoid"
    assert model.get_layer("drop").noise_shape == (None, 1, 1, 8)
    assert_close_rel(model.predict(IO["x"], verbose=0), IO["pred"], 1e-5, "predictions")


def test_catdog_file_of_them_round_trips(tmp_path):
    model = catdog.models.load_model(os.path.join(FIX, "layers_cnn.keras"))
    path = tmp_path / "again.keras"
    model.save(path)
    again = catdog.models.load_model(path)
    np.testing.assert_array_equal(again.predict(IO["x"], verbose=0), model.predict(IO["x"], verbose=0))
    ours = json.loads(zipfile.ZipFile(path).read("config.json"))
    theirs = json.loads(zipfile.ZipFile(os.path.join(FIX, "layers_cnn.keras")).read("config.json"))
    by_name = {l["config"]["name"]: l for l in theirs["config"]["layers"]}
    for layer in ours["config"]["layers"]:
        keras_layer = by_name[layer["config"]["name"]]
        assert layer["class_name"] == keras_layer["class_name"]
        for key in ("activation", "keepdims", "noise_shape", "target_shape", "filters"):
            if key in keras_layer["config"]:
                assert layer["config"][key] == keras_layer["config"][key], (layer["config"]["name"], key)


def test_catdog_file_of_them_is_keras_config(tmp_path):
    """The whole config.json of catdog's re-save equals Keras's (build_config included: Keras
    writes one for Flatten and the merging layers, none for Activation, Reshape, Dropout or the
    global poolings), up to what tests/test_saving.py's ALLOWED lists."""
    from test_saving import _diffs, _norm

    model = catdog.models.load_model(os.path.join(FIX, "layers_cnn.keras"))
    model.save(tmp_path / "again.keras")
    ours = json.loads(zipfile.ZipFile(tmp_path / "again.keras").read("config.json"))
    theirs = json.loads(zipfile.ZipFile(os.path.join(FIX, "layers_cnn.keras")).read("config.json"))
    for c in (ours, theirs):
        c["config"]["layers"] = {e["name"]: e for e in c["config"]["layers"]}
    assert [d for d in _diffs(_norm(ours), _norm(theirs))
            if not d.endswith("/kwargs/training: only in keras")] == []
