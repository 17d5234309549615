"""Resizing (keras/src/layers/preprocessing/image_preprocessing/resizing.py; the TF backend's
resize in keras/src/backend/tensorflow/image.py): tf.image.resize's bilinear / nearest with
half-pixel centres, crop_to_aspect_ratio, pad_to_aspect_ratio with fill_value, in the engine
graph with its gradient; against Keras 3.15 / TF 2.21 (tests/fixtures/make_layers_fixtures.py
resizing) and by finite differences."""
import json

import numpy as np
import pytest

import catdog
from catdog import layers
from conftest import assert_close_rel
from layers_common import finite_difference_input_gradient, input_gradient, load, probe_model

IO = load("resizing")
CASES = {  # the fixture script's RESIZE_CASES
    "bilinear_up": dict(height=9, width=11),
    "bilinear_down": dict(height=5, width=4),
    "nearest_up": dict(height=8, width=12, interpolation="nearest"),
    "nearest_down": dict(height=5, width=4, interpolation="nearest"),
    "crop": dict(height=5, width=5, crop_to_aspect_ratio=True),
    "crop_tall_nearest": dict(height=3, width=4, crop_to_aspect_ratio=True,
                              interpolation="nearest"),
    "pad": dict(height=8, width=8, pad_to_aspect_ratio=True, fill_value=0.5),
    "pad_tall_nearest": dict(height=4, width=8, pad_to_aspect_ratio=True,
                             interpolation="nearest", fill_value=-1.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_keras(case):
    x, dy = IO[f"x/{case}"], IO[f"dy/{case}"]
    layer = layers.Resizing(**CASES[case])
    model = probe_model(layer, x.shape[1:])
    assert model.output_shape == IO[f"y/{case}"].shape[1:]
    assert layer.count_params() == 0
    assert_close_rel(model.predict_on_batch(x), IO[f"y/{case}"], 1e-6, "forward")
    assert_close_rel(input_gradient(model, x, dy), IO[f"dx/{case}"], 1e-5, "input gradient")
    want = json.loads(str(IO[f"config/{case}"]))
    got = layer.get_config()
    for key in ("height", "width", "interpolation", "crop_to_aspect_ratio",
                "pad_to_aspect_ratio", "fill_mode", "fill_value"):
        assert got[key] == want[key], key


@pytest.mark.parametrize("case", ["bilinear_down", "crop", "pad"])
def test_gradient_by_finite_differences(case):
    """Resizing is linear in x: central differences are exact up to float32 rounding."""
    x, dy = IO[f"x/{case}"][:1] / 255, IO[f"dy/{case}"][:1]
    model = probe_model(layers.Resizing(**CASES[case]), x.shape[1:])
    got = input_gradient(model, x, dy)
    for i, want in finite_difference_input_gradient(model, x, dy, h=0.25).items():
        assert abs(got[i] - want) <= 2e-3 * max(1.0, abs(want)), (i, got[i], want)


def test_eager_call_on_an_image_keeps_its_dtype():
    """Keras's example: resizer(image) on one unbatched image; a uint8 image comes back uint8
    (Keras rounds and saturates)."""
    y = layers.Resizing(9, 11)(IO["uint8/x"])
    assert y.dtype == np.uint8 and y.shape == (9, 11, 3)
    assert np.abs(y.astype(int) - IO["uint8/y"].astype(int)).max() <= 0  # same rounding


def test_in_a_trained_model_and_saved(tmp_path):
    """A model resizing its input to the conv's size trains (gradients flow past the resize
    into nothing trainable, the conv trains) and saves / loads with the layer's config."""
    catdog.random.set_seed(1)
    model = catdog.Sequential([catdog.Input((12, 9, 3)), layers.Resizing(8, 8, name="resize"),
                               layers.Rescaling(1 / 255), layers.Conv2D(2, 3, activation="relu"),
                               layers.GlobalAveragePooling2D(), layers.Dense(1)])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 12, 9, 3)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 127).astype(np.float32)
    model.compile(optimizer="adam", loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "r.keras")
    again = catdog.models.load_model(tmp_path / "r.keras")
    np.testing.assert_array_equal(again.predict_on_batch(x), model.predict_on_batch(x))
    assert again.get_layer("resize").output_shape == (8, 8, 3)


def test_bad_arguments_name_the_layer():
    with pytest.raises(ValueError, match="'r1'.*bicubic.*not supported by catdog"):
        layers.Resizing(4, 4, interpolation="bicubic", name="r1")
    with pytest.raises(ValueError, match="'r2'.*Expected of one"):
        layers.Resizing(4, 4, interpolation="cubic", name="r2")
    with pytest.raises(ValueError, match="'r3'.*Only one of"):
        layers.Resizing(4, 4, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True, name="r3")
    with pytest.raises(ValueError, match="'r4'.*antialias"):
        layers.Resizing(4, 4, antialias=True, name="r4")
    with pytest.raises(ValueError, match="'r5'.*resizes images"):
        catdog.Sequential([catdog.Input((5,)), layers.Resizing(4, 4, name="r5")])
