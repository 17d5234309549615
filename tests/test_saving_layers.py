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


def build_like_fixture():
    """make_layer_saving_fixtures.py's build(), with catdog for keras."""
    from catdog import layers

    inputs = catdog.Input((16, 16, 3), name="input_layer")  # Keras's first automatic name
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.SeparableConv2D(8, 3, padding="same", activation="swish", name="sep")(x)
    s = layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    s = layers.Conv2D(8, 1, name="se_conv")(s)
    s = layers.Activation("hard_sigmoid", name="se_gate")(s)
    x = layers.Multiply(name="se_mul")([x, s])
    m = layers.GlobalMaxPooling2D(keepdims=True, name="gmp")(x)
    d = layers.Subtract(name="sub")([x, layers.Conv2D(8, 1, name="side")(x)])
    x = layers.Average(name="avg")([layers.Maximum(name="max")([x, d]), d])
    x = layers.Dropout(0.3, noise_shape=(None, 1, 1, 8), name="drop")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.Dense(16, activation="relu", name="hidden")(x)
    m = layers.Reshape((8,), name="reshape")(m)
    out = layers.Dense(3, name="logits")(layers.Add(name="join")([layers.Dense(16, name="m_up")(m), x]))
    # Keras 3 names an unnamed Functional "functional" (catdog: "model"); the name is the
    # attribute of the weights file's `vars` group, compared below
    return catdog.Model(inputs, out, name="functional")


def test_catdog_built_branched_model_is_in_keras_order(tmp_path):
    """A branched model catdog builds lists its layers, writes its config and names its
    weights (`layers/dense_1/vars/0` ...) in Keras's operation order
    (keras/src/ops/function.py map_graph: by depth, then first reached), so TensorFlow's Keras
    puts each weight in the same layer: here `m_up` is dense and `hidden` dense_1, though
    `hidden` comes first in a depth-first walk."""
    from test_saving import _h5_layout

    keras_model = catdog.models.load_model(os.path.join(FIX, "layers_cnn.keras"))
    model = build_like_fixture()
    assert [l.name for l in model.layers] == [l.name for l in keras_model.layers]
    for layer in model.layers:
        layer.set_weights(keras_model.get_layer(layer.name).get_weights())
    assert_close_rel(model.predict(IO["x"], verbose=0), IO["pred"], 1e-5, "catdog-built")
    model.save(tmp_path / "m.keras")
    ours, theirs = zipfile.ZipFile(tmp_path / "m.keras"), zipfile.ZipFile(os.path.join(FIX, "layers_cnn.keras"))
    assert ([e["name"] for e in json.loads(ours.read("config.json"))["config"]["layers"]]
            == [e["name"] for e in json.loads(theirs.read("config.json"))["config"]["layers"]])
    assert _h5_layout(ours.read("model.weights.h5")) == _h5_layout(theirs.read("model.weights.h5"))
