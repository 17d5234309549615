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
