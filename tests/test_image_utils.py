"""catdog.utils.load_img / img_to_array / array_to_img against Keras 3.15
(keras/src/utils/image_utils.py), through the fixtures of
tests/fixtures/make_image_utils_fixtures.py (Pillow 13), with Pillow (catdog then runs the same
Pillow calls as Keras: bit-identical) and without it (catdog's stb_image decoder and its
reproduction of Pillow's nearest resize, catdog/image_utils.py), and the classification
tutorial's last cell (tensorflow/docs site/en/tutorials/images/classification.ipynb)."""
import io
import json
from pathlib import Path

import numpy as np
import pytest

import catdog
from catdog import image_utils
from conftest import SHARED_DATA

FIX = Path(__file__).resolve().parent / "fixtures"
IU = FIX / "data" / "image_utils"
CASES = json.loads((IU / "load_img.json").read_text())
pil = pytest.importorskip("PIL.Image", reason="Pillow (a test dependency) compares image objects")


@pytest.fixture(scope="module")
def load_fix():
    return np.load(IU / "load_img.npz")


@pytest.fixture(scope="module")
def a2i_fix():
    return np.load(IU / "array_to_img.npz")


@pytest.fixture
def no_pil(monkeypatch):
    """catdog as it runs where Pillow is not installed."""
    monkeypatch.setattr(image_utils, "_pil_module", None)


def _path(case):
    if case["file"].startswith("shared/"):
        p = SHARED_DATA / case["file"][len("shared/"):]
        if not p.exists():
            pytest.skip(f"../shared is absent: no {p}")
        return p
    return FIX / case["file"]


def _kwargs(case):
    kw = dict(case["kwargs"])
    if "target_size" in kw:
        kw["target_size"] = tuple(kw["target_size"])
    return kw


def test_load_img_with_pillow_is_keras_bit_for_bit(load_fix):
    for case in CASES:
        if case["file"].startswith("shared/") and not SHARED_DATA.exists():
            continue
        img = catdog.utils.load_img(_path(case), **_kwargs(case))
        assert isinstance(img, pil.Image)  # as Keras: a PIL image
        assert list(img.size) == case["size"] and img.mode == case["mode"], case
        x = catdog.utils.img_to_array(img)
        assert x.dtype == np.float32 and list(x.shape) == case["shape"], case
        assert np.array_equal(x, load_fix[case["key"]].astype(np.float32)), case


def _fallback_supported(case):
    kw = case["kwargs"]
    return kw.get("color_mode") != "rgba" and kw.get("interpolation", "nearest") == "nearest"


def test_load_img_without_pillow_matches_keras(load_fix, no_pil):
    """Without Pillow: PNG/BMP/GIF bit-identical (decode, nearest resize, keep_aspect_ratio,
    grayscale); JPEG within libjpeg-turbo's IDCT/colour rounding of stb_image."""
    jpeg_err = []
    checked = 0
    for case in CASES:
        if not _fallback_supported(case):
            continue
        if case["file"].startswith("shared/") and not SHARED_DATA.exists():
            continue
        img = catdog.utils.load_img(_path(case), **_kwargs(case))
        assert isinstance(img, image_utils.Image)
        assert list(img.size) == case["size"] and img.mode == case["mode"], case
        x = catdog.utils.img_to_array(img)
        want = load_fix[case["key"]].astype(np.float32)
        assert x.dtype == np.float32 and x.shape == want.shape, case
        if case["file"].endswith(".jpg"):
            jpeg_err.append(np.abs(x - want))
        else:
            assert np.array_equal(x, want), case  # the same pixels Pillow picks
        checked += 1
    assert checked >= 35
    worst = max(float(e.max()) for e in jpeg_err)
    mean = float(np.mean(np.concatenate([e.ravel() for e in jpeg_err])))
    assert worst <= 5 and mean <= 0.5, (worst, mean)  # measured: 3 levels, mean 0.06-0.14


def test_without_pillow_filtered_resizes_and_rgba_say_so(no_pil):
    path = FIX / "data" / "image_utils" / "rgba.png"
    with pytest.raises(ImportError, match="bilinear.*Pillow"):
        catdog.utils.load_img(path, target_size=(10, 10), interpolation="bilinear")
    with pytest.raises(ImportError, match="rgba.*Pillow"):
        catdog.utils.load_img(path, color_mode="rgba")
    with pytest.raises(ValueError, match="Invalid interpolation method cubic"):
        catdog.utils.load_img(path, target_size=(10, 10), interpolation="cubic")
    # the same size needs no resize: any interpolation is accepted, as Keras
    assert catdog.utils.load_img(path, target_size=(29, 41), interpolation="bilinear").size == (41, 29)


@pytest.mark.parametrize("pillow", [True, False])
def test_array_to_img_is_keras(a2i_fix, monkeypatch, pillow):
    if not pillow:
        monkeypatch.setattr(image_utils, "_pil_module", None)
    meta = json.loads((IU / "array_to_img.json").read_text())
    for i, m in enumerate(meta):
        img = catdog.utils.array_to_img(a2i_fix[f"in/{m['input']}"], scale=m["scale"])
        assert img.mode == m["mode"] and list(img.size) == m["size"], m
        got = np.asarray(img)
        assert got.dtype == a2i_fix[m["key"]].dtype and np.array_equal(got, a2i_fix[m["key"]]), m
        back = catdog.utils.img_to_array(img)
        assert back.dtype == np.float32 and np.array_equal(back, a2i_fix[f"back{i}"]), m


def test_img_to_array_layouts_and_dtypes():
    img = catdog.utils.array_to_img(np.arange(24, dtype=np.float32).reshape(2, 4, 3), scale=False)
    x = catdog.utils.img_to_array(img)
    assert x.shape == (2, 4, 3) and x.dtype == np.float32 and x[1, 3, 2] == 23
    assert catdog.utils.img_to_array(img, data_format="channels_first").shape == (3, 2, 4)
    assert catdog.utils.img_to_array(img, dtype="uint8").dtype == np.uint8
    gray = catdog.utils.img_to_array(np.zeros((5, 6)), data_format="channels_first")
    assert gray.shape == (1, 5, 6)
    chw = np.zeros((3, 2, 4), np.float32)
    assert catdog.utils.array_to_img(chw, data_format="channels_first").size == (4, 2)
    assert catdog.preprocessing.image.load_img is catdog.utils.load_img


def test_bad_input_gets_clear_errors(tmp_path):
    photo = FIX / "data" / "baseline.jpg"
    with pytest.raises(ValueError, match="color_mode"):
        catdog.utils.load_img(photo, color_mode="bgr")
    with pytest.raises(ValueError, match="target_size"):
        catdog.utils.load_img(photo, target_size=(0, 10))
    with pytest.raises(ValueError, match="target_size"):
        catdog.utils.load_img(photo, target_size=180)
    with pytest.raises(TypeError, match="path-like or io.BytesIO"):
        catdog.utils.load_img(42)
    with pytest.raises(FileNotFoundError):
        catdog.utils.load_img(tmp_path / "missing.jpg")
    (tmp_path / "not_an_image.jpg").write_bytes(b"hello")
    with pytest.raises(OSError):  # PIL.UnidentifiedImageError, as Keras
        catdog.utils.load_img(tmp_path / "not_an_image.jpg")
    with pytest.raises(ValueError, match="rank 3"):
        catdog.utils.array_to_img(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="Unsupported channel number: 2"):
        catdog.utils.array_to_img(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match="Unsupported image shape"):
        catdog.utils.img_to_array(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="data_format"):
        catdog.utils.img_to_array(np.zeros((4, 4, 3)), data_format="NHWC")


def test_16bit_png_without_pillow(no_pil):
    """Pillow reads a 16-bit grayscale PNG as I;16 (clipped to 255 by convert("RGB")) where
    stb keeps the high byte: refused rather than different; 16-bit RGB and gray+alpha read
    as their high byte in both."""
    from test_data_imagefiles import png_bytes

    v = np.array([[0, 200, 255, 256, 4000, 65535]], np.uint16)
    with pytest.raises(ImportError, match="16-bit grayscale PNG needs Pillow"):
        catdog.utils.load_img(io.BytesIO(png_bytes(v, bit_depth=16)))
    ga = catdog.utils.load_img(io.BytesIO(png_bytes(np.stack([v, v], -1), bit_depth=16)))
    assert list(np.asarray(ga)[0, :, 0]) == [0, 0, 0, 1, 15, 255]


def test_bad_input_without_pillow(tmp_path, no_pil):
    (tmp_path / "not_an_image.jpg").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a supported image"):
        catdog.utils.load_img(tmp_path / "not_an_image.jpg")
    img = catdog.utils.load_img(io.BytesIO((FIX / "data" / "baseline.jpg").read_bytes()))
    assert img.size == (64, 48) and np.asarray(img).shape == (48, 64, 3)


def test_tutorial_last_cell(load_fix):
    """classification.ipynb's prediction cell with tf.keras -> catdog, tf.<op> ->
    catdog.ops.<op> (tf.nn.softmax -> catdog.ops.nn.softmax), on a small stand-in model."""
    img_height = img_width = 180
    class_names = ["cats", "dogs"]
    model = catdog.Sequential([
        catdog.layers.Rescaling(1. / 255, input_shape=(img_height, img_width, 3)),
        catdog.layers.GlobalAveragePooling2D(),
        catdog.layers.Dense(2),
    ])
    path = FIX / "data" / "baseline.jpg"

    img = catdog.utils.load_img(path, target_size=(img_height, img_width))
    img_array = catdog.utils.img_to_array(img)
    img_array = catdog.ops.expand_dims(img_array, 0)  # Create a batch

    predictions = model.predict(img_array)
    score = catdog.ops.nn.softmax(predictions[0])
    text = ("This image most likely belongs to {} with a {:.2f} percent confidence."
            .format(class_names[np.argmax(score)], 100 * np.max(score)))

    assert img_array.shape == (1, 180, 180, 3)
    assert np.array_equal(img_array[0], load_fix[CASES[1]["key"]].astype(np.float32))
    z = predictions[0].astype(np.float64)
    want = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert score.dtype == np.float32 and np.allclose(score, want, rtol=1e-6, atol=0)
    assert text.startswith(f"This image most likely belongs to {class_names[int(np.argmax(want))]}")
    assert f"{100 * want.max():.2f} percent" in text
