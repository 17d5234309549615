"""catdog's decoding, resizing, augmentation geometry and file indexing against TensorFlow /
Keras 3, through the fixtures written by tests/fixtures/make_data_fixtures.py.

Measured when the fixtures were made (TF 2.21, Keras 3.15): resize (bilinear, nearest,
crop_to_aspect_ratio) bit-identical to tf.image.resize (max diff 0.0); rotation/zoom/
translation max diff 4.7e-6 on [0, 1] images, all fill modes and interpolations, edges
included; decoding: PNG/BMP/GIF exact, JPEG differs from libjpeg-turbo by at most 5 levels
(mean 1.0-1.2 levels of 255) — different IDCT and colour-conversion rounding."""
import json
from pathlib import Path

import numpy as np
import pytest

import catdog  # noqa: F401
from catdog import _engine

FIX = Path(__file__).resolve().parent / "fixtures" / "data"


@pytest.fixture(scope="module")
def resize_fix():
    return np.load(FIX / "resize.npz")


@pytest.fixture(scope="module")
def geometry_fix():
    return np.load(FIX / "geometry.npz")


def test_resize_matches_tf_within_1_over_255(resize_fix):
    worst = 0.0
    checked = 0
    for key in resize_fix.files:
        if key.endswith("/input"):
            continue
        name, method, size = key.split("/")
        h, w = (int(v) for v in size.split("x"))
        img = resize_fix[f"{name}/input"]
        if method == "crop":
            got = _engine.resize(img, h, w, "bilinear", True)
        else:
            got = _engine.resize(img, h, w, method)
        err = float(np.abs(got - resize_fix[key]).max())
        assert err <= 1.0, f"{key}: max diff {err} levels"
        worst = max(worst, err)
        checked += 1
    assert checked >= 40
    assert worst <= 1e-3  # measured: 0.0 (the same float arithmetic as TF)


def test_cached_uint8_is_rounded_tf_resize(tmp_path, resize_fix):
    """The dataset's uint8 cache holds round(tf.image.resize(...)): within 0.5 level."""
    from test_data_imagefiles import png_bytes

    img = resize_fix["photo/input"]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "p.png").write_bytes(png_bytes(img))
    ds = _engine.Dataset([str(tmp_path / "a" / "p.png")], None, 160, 160, "bilinear", False, "none", 1,
                         1 << 20, "raise")
    ds.load(1)
    got = ds.get_image(0).astype(np.float32)
    assert np.abs(got - resize_fix["photo/bilinear/160x160"]).max() <= 0.5 + 1e-4


def _op_for(key):
    kind, par, fill, interp = key.split("/")
    op = {"fill_mode": fill, "interpolation": interp, "fill_value": 0.3}
    vals = [float(v) for v in par.split(",")]
    if kind == "rotation":
        op.update(kind="rotation", lo=vals[0], hi=vals[0])
    elif kind == "zoom":
        op.update(kind="zoom", lo=vals[0], hi=vals[0])
        if len(vals) > 1:
            op.update(lo2=vals[1], hi2=vals[1], has_second=1)
    else:
        op.update(kind="translation", lo=vals[0], hi=vals[0], lo2=vals[1], hi2=vals[1], has_second=1)
    return op


@pytest.mark.parametrize("fill", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
def test_geometry_matches_keras_every_fill_mode(geometry_fix, fill, interp):
    x = geometry_fix["input"]
    keys = [k for k in geometry_fix.files if k.endswith(f"/{fill}/{interp}")]
    assert len(keys) == 5
    for key in keys:
        got = _engine.augment(x, [_op_for(key)], True, 1, 0, np.arange(len(x)))
        err = float(np.abs(got - geometry_fix[key]).max())
        assert err <= 1e-3, f"{key}: max diff {err}"  # measured <= 4.7e-6, edges included


def test_rotation_layer_matches_keras_at_fixed_angle(geometry_fix):
    from catdog.layers.preprocessing import RandomRotation

    x = geometry_fix["input"]
    layer = RandomRotation((0.1, 0.1), fill_mode="constant", fill_value=0.3)
    got = layer(x)
    assert np.abs(got - geometry_fix["rotation/0.1/constant/bilinear"]).max() <= 1e-3


def test_flip_geometry():
    from catdog.layers.preprocessing import RandomFlip, apply_layers

    x = np.random.default_rng(0).random((64, 5, 7, 3), dtype=np.float32)
    out = apply_layers([RandomFlip("horizontal")], x, seed=3)
    flipped = [np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)]
    same = [np.array_equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 16 <= sum(flipped) <= 48
    out = apply_layers([RandomFlip("vertical")], x, seed=3)
    assert all(np.array_equal(o, xi[::-1]) or np.array_equal(o, xi) for o, xi in zip(out, x))


def test_decode_formats_against_tf():
    """PNG 16-bit exact; JPEG (baseline, grayscale, 4:2:0, progressive, CMYK) within 5 levels."""
    ref = np.load(FIX / "decode.npz")
    for key in [k for k in ref.files if k.startswith("file/")]:
        name = key[5:]
        got = _engine.decode_file(str(FIX / name)).astype(int)
        want = ref[key].astype(int)
        assert got.shape == want.shape, name
        diff = np.abs(got - want)
        if name.endswith(".png"):
            assert diff.max() == 0, name
        else:
            assert diff.max() <= 6 and diff.mean() <= 1.5, f"{name}: max {diff.max()} mean {diff.mean():.3f}"


def _tree(tmp_path, spec):
    from test_data_imagefiles import png_bytes

    data = png_bytes(np.zeros((2, 2, 3), np.uint8))
    for rel in spec:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return tmp_path


def test_listing_order_classes_and_split_match_keras(tmp_path, capsys):
    from catdog.utils import image_dataset_from_directory as idfd

    fix = json.loads((FIX / "listing.json").read_text())
    root = _tree(tmp_path, fix["tree"])

    def rel(ds):
        return [str(Path(p).relative_to(root)) for p in ds.file_paths]

    ds = idfd(root, shuffle=False, image_size=(8, 8), on_error="skip")
    assert ds.class_names == fix["class_names"]
    assert rel(ds) == fix["order"]
    assert "Found 32 files belonging to 4 classes." in capsys.readouterr().out
    for seed in (123, 7):
        ds = idfd(root, shuffle=True, seed=seed, image_size=(8, 8))
        assert rel(ds) == fix[f"shuffled_seed{seed}"]
        for subset in ("training", "validation"):
            ds = idfd(root, shuffle=True, seed=seed, validation_split=0.3, subset=subset, image_size=(8, 8))
            assert rel(ds) == fix[f"{subset}_seed{seed}"]
    ds = idfd(root, shuffle=False, image_size=(8, 8), class_names=["dogs", "cats", "birds"])
    assert ds.class_names == fix["class_names_given"]
    assert rel(ds) == fix["order_class_names_given"]
