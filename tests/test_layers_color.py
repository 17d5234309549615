"""RandomContrast and RandomBrightness (keras/src/layers/preprocessing/image_preprocessing/
random_contrast.py, random_brightness.py; factor parsing in base_image_preprocessing_layer.py
`_set_factor`): augmentation layers run by the C data pipeline (csrc/data/augment.c) during fit
and on eager calls, identity at inference. The transforms at fixed draws against Keras 3.15's own
transform_images (tests/fixtures/make_layers_fixtures.py color); the draws' ranges, seeding and
determinism statistically, as tests/test_data_keras_match.py does for the geometric layers."""
import json

import numpy as np
import pytest

import catdog
from catdog import _engine, layers
from layers_common import load

IO = load("color")
FACTORS = [0.5, 1.0, 1.7]
DELTAS = [-40.0, 0.0, 90.0]


def fixed(kind, value, vr):
    """The op at one draw (lo == hi) for image-by-image comparison."""
    lo, hi = (0.0, 255.0) if vr == "255" else (0.0, 1.0)
    if kind == "contrast":
        return {"kind": "contrast", "lo": value, "hi": value, "lo2": lo, "hi2": hi}
    return {"kind": "brightness", "lo": value / 255.0, "hi": value / 255.0, "scale": hi - lo,
            "lo2": lo, "hi2": hi}


@pytest.mark.parametrize("vr", ["255", "01"])
@pytest.mark.parametrize("kind", ["contrast", "brightness"])
def test_transform_matches_keras(kind, vr):
    x = IO["x"] if vr == "255" else IO["x01"]
    want = IO[f"{kind}/{vr}"]
    values = FACTORS if kind == "contrast" else DELTAS
    for i, v in enumerate(values):
        got = _engine.augment(x[i:i + 1].copy(), [fixed(kind, v, vr)], True, 1, 0,
                              np.arange(1, dtype=np.int64))
        scale = 255.0 if vr == "255" else 1.0
        assert np.abs(got[0] - want[i]).max() <= 2e-5 * scale, (kind, vr, v)
    top = 255.0 if vr == "255" else 1.0
    assert want.min() == 0.0 and want.max() == top  # the fixture's draws clip at both ends


@pytest.mark.parametrize("cls,name", [(layers.RandomContrast, "contrast"),
                                      (layers.RandomBrightness, "brightness")])
def test_factor_arguments_as_keras_reads_them(cls, name):
    for arg in (0.2, (0.1, 0.4), (0.4, -0.3), (-0.5, 0.5)):
        want = IO[f"factor/{name}/{arg}"]
        if np.isnan(want).all():
            with pytest.raises(ValueError, match="'bad'.*factor"):
                cls(arg, name="bad")
        else:
            np.testing.assert_allclose(cls(arg).factor, want)
    cfg = cls((0.1, 0.3), value_range=(0, 1), seed=7).get_config()
    want = json.loads(str(IO[f"config/{name}"]))
    for key in ("factor", "value_range", "seed", "data_format"):
        assert cfg[key] == want[key], key


def test_contrast_draws_cover_keras_range_and_are_seeded():
    """RandomContrast(0.5): factors uniform in [1, 1.5] (Keras 3 reads one number f as (0, f));
    pixels stay in the value range; a seed fixes them, no seed draws afresh each call."""
    rng = np.random.default_rng(0)
    x = rng.uniform(60, 200, (400, 4, 4, 3)).astype(np.float32)
    x[:, 0, 0, :] = 100.0  # a pixel away from its mean in every image
    x[:, 0, 1, :] = 180.0
    layer = layers.RandomContrast(0.5, seed=3)
    y = layer(x, training=True)
    m = x.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
    f = ((y - m) / (x - m))[:, 0, 0, 0]
    assert f.min() >= 1.0 - 1e-4 and f.max() <= 1.5 + 1e-4
    assert np.histogram(f, bins=5, range=(1.0, 1.5))[0].min() > 50  # uniform-ish
    assert y.min() >= 0 and y.max() <= 255
    np.testing.assert_array_equal(layers.RandomContrast(0.5, seed=3)(x, training=True), y)
    unseeded = layers.RandomContrast(0.5)
    assert not np.array_equal(unseeded(x), unseeded(x))
    np.testing.assert_array_equal(layer(x, training=False), x)  # inference: identity


def test_brightness_draws_cover_keras_range_and_clip():
    rng = np.random.default_rng(1)
    x = rng.uniform(100, 150, (400, 3, 3, 3)).astype(np.float32)
    layer = layers.RandomBrightness(0.3, value_range=(0, 255), seed=5)
    y = layer(x, training=True)
    d = (y - x).reshape(400, -1)
    assert np.allclose(d, d[:, :1], atol=1e-3)  # one delta per image
    d = d[:, 0]
    assert d.min() >= -0.3 * 255 - 1e-3 and d.max() <= 0.3 * 255 + 1e-3
    assert d.min() < -60 and d.max() > 60 and abs(d.mean()) < 10
    y = layers.RandomBrightness((0.6, 0.9), value_range=(0, 1), seed=2)(x / 255, training=True)
    assert y.max() == 1.0 and y.min() >= 0.6  # added 0.6..0.9, clipped at 1
    np.testing.assert_array_equal(layer(x, training=False), x)


def test_in_fit_augmentation_is_deterministic_and_identity_in_predict():
    """In a Sequential the layers run in the data pipeline during fit (same seed: same
    weights after training) and not at all in predict (identity)."""
    def run():
        catdog.random.set_seed(11)
        model = catdog.Sequential([
            catdog.Input((8, 8, 3)), layers.RandomContrast(0.3), layers.RandomBrightness(0.2),
            layers.Rescaling(1 / 255), layers.Conv2D(2, 3, activation="relu"),
            layers.GlobalAveragePooling2D(), layers.Dense(1)])
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (16, 8, 8, 3)).astype(np.float32)
        y = (x.mean(axis=(1, 2, 3)) > 127).astype(np.float32)
        model.compile(optimizer="adam", loss=catdog.losses.BinaryCrossentropy(from_logits=True))
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        assert [type(l).__name__ for l in model.layers[:3]] == \
            ["RandomContrast", "RandomBrightness", "Rescaling"]
        plain = catdog.Sequential([catdog.Input((8, 8, 3))] + model.layers[2:])
        return model, plain, x, model.layers[3].get_weights()[0]

    m1, plain, x, w1 = run()
    np.testing.assert_array_equal(m1.predict_on_batch(x), plain.predict_on_batch(x))
    _, _, _, w2 = run()
    np.testing.assert_array_equal(w1, w2)


def test_saving_round_trip(tmp_path):
    model = catdog.Sequential([catdog.Input((8, 8, 3)),
                               layers.RandomContrast((0.1, 0.3), value_range=(0, 1), seed=4),
                               layers.RandomBrightness(0.2, seed=5), layers.Flatten(),
                               layers.Dense(1)])
    model.save(tmp_path / "c.keras")
    again = catdog.models.load_model(tmp_path / "c.keras")
    c, b = again.layers[0], again.layers[1]
    assert c.factor == (0.1, 0.3) and c.value_range == [0, 1] and c.seed == 4
    assert b.factor == (-0.2, 0.2) and b.value_range == [0, 255]


def test_bad_arguments_name_the_layer():
    with pytest.raises(ValueError, match="'c1'.*factor.*\\[0, 1\\]"):
        layers.RandomContrast(1.5, name="c1")
    with pytest.raises(ValueError, match="'b1'.*factor.*\\[-1, 1\\]"):
        layers.RandomBrightness((-2, -1.5), name="b1")
    with pytest.raises(ValueError, match="'b2'.*value_range"):
        layers.RandomBrightness(0.1, value_range=255, name="b2")
    with pytest.raises(ValueError, match="'c2'.*value_range"):
        layers.RandomContrast(0.1, value_range=(1, 0), name="c2")
