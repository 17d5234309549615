"""Whatever is in the folder: truncated/corrupt JPEGs, empty files, text named .jpg, TIFF,
a 30000x30000 header, unreadable files, FIFOs, broken links, empty class folders,
non-UTF-8 names, no images at all — no crash, no hang, bounded memory, and the on_error
policy ("warn" | "skip" | "raise") decides what happens to the file."""
import os
import resource
import warnings
from pathlib import Path

import numpy as np
import pytest

import catdog  # noqa: F401
from catdog import _engine
from catdog.utils import image_dataset_from_directory as idfd
from test_data_imagefiles import png_bytes, png_header_only, rng_image, tiff_bytes

FIX = Path(__file__).resolve().parent / "fixtures" / "data"


def bad_files():
    jpeg = (FIX / "baseline.jpg").read_bytes()
    corrupt = bytearray(jpeg)
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 64] = b"\xff\xd9" * 32  # EOI markers mid-scan
    return {
        "truncated.jpg": jpeg[: len(jpeg) // 3],
        "header_only.jpg": jpeg[:200],
        "zero.jpg": b"",
        "text.jpg": b"I am a text file, not a JPEG.\n" * 10,
        "tiff.png": tiff_bytes(),
        "huge.png": png_header_only(30000, 30000),
        "huge2.png": png_header_only(20000, 15000),
        "dht.jpg": (FIX / "fuzz_regressions" / "jpeg_dht_over_256_codes.bin").read_bytes(),
    }, bytes(corrupt)


def make_bad_folder(root):
    good = root / "good"
    good.mkdir(parents=True)
    for i in range(5):
        (good / f"ok{i}.png").write_bytes(png_bytes(rng_image(10, 12, seed=i)))
    (good / "cmyk.jpg").write_bytes((FIX / "cmyk.jpg").read_bytes())  # stb decodes CMYK
    (good / "corrupt_but_decodable.jpg").write_bytes(bad_files()[1])
    bad = root / "bad"
    bad.mkdir()
    files, _ = bad_files()
    for name, data in files.items():
        (bad / name).write_bytes(data)
    os.symlink(bad / "does_not_exist.png", bad / "broken_link.png")
    os.mkfifo(bad / "fifo.jpg")
    os.mkdir(bad / "folder.jpg")  # a folder with an image name: not a file, not listed
    nonutf8 = os.fsencode(str(bad)) + b"/caf\xe9\xff.png"
    with open(nonutf8, "wb") as f:
        f.write(png_bytes(rng_image(10, 12, seed=9)))
    (root / "empty_class").mkdir()
    return root, len(files) + 2  # + broken link + fifo


def test_warn_skips_bad_files_and_reports_them(tmp_path):
    root, n_bad = make_bad_folder(tmp_path)
    with pytest.warns(RuntimeWarning, match=rf"skipped {n_bad} of {n_bad + 8} files") as rec:
        ds = idfd(root, batch_size=4, image_size=(16, 16), shuffle=False, verbose=False)
    msg = str(rec[0].message)
    for name in ("truncated.jpg", "zero.jpg", "text.jpg", "tiff.png", "huge.png", "fifo.jpg", "broken_link.png"):
        assert name in msg
    assert ds.class_names == ["bad", "empty_class", "good"]
    assert ds.num_samples == 8  # 5 PNG + CMYK + corrupt-but-decodable + non-UTF-8 name
    assert len(ds.skipped_files) == n_bad
    x, y = map(np.concatenate, zip(*ds))
    assert x.shape == (8, 16, 16, 3) and np.isfinite(x).all()
    assert any(p.endswith("caf\udce9\udcff.png") for p in ds.file_paths)  # surrogate-escaped name


def test_skip_is_silent(tmp_path):
    root, _ = make_bad_folder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = idfd(root, image_size=(8, 8), on_error="skip", verbose=False)
    assert ds.num_samples == 8


def test_raise_names_the_first_bad_file(tmp_path):
    root, _ = make_bad_folder(tmp_path)
    with pytest.raises((ValueError, OSError), match="bad/"):
        idfd(root, image_size=(8, 8), on_error="raise", shuffle=False, verbose=False)


def test_unreadable_file(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "ok.png").write_bytes(png_bytes(rng_image(4, 4)))
    p = d / "locked.png"
    p.write_bytes(png_bytes(rng_image(4, 4)))
    p.chmod(0)
    if os.access(p, os.R_OK):  # root reads anything: use a path that cannot be opened
        p.chmod(0o644)
        p.unlink()
        os.symlink(d / "missing" / "x.png", p)
    with pytest.warns(RuntimeWarning, match="locked.png"):
        ds = idfd(tmp_path, image_size=(8, 8), verbose=False)
    assert ds.num_samples == 1


def test_uncached_failures_surface_per_policy(tmp_path):
    """A file whose header is fine but whose data is cut: found only when decoded."""
    d = tmp_path / "c"
    d.mkdir()
    full = png_bytes(rng_image(64, 64))
    (d / "a_ok.png").write_bytes(full)
    (d / "b_cut.png").write_bytes(full[:len(full) // 2])
    ds = idfd(tmp_path, image_size=(8, 8), cache=False, shuffle=False, verbose=False)
    assert ds.num_samples == 2  # header check passes
    with pytest.warns(RuntimeWarning, match="b_cut.png"):
        batches = list(ds)
    assert [len(b[0]) for b in batches] == [1]  # the batch is one image short
    ds = idfd(tmp_path, image_size=(8, 8), cache=False, shuffle=False, verbose=False, on_error="raise")
    with pytest.raises(ValueError, match="b_cut.png"):
        list(ds)


def test_no_images_is_a_value_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match="No images found"):
        idfd(tmp_path, verbose=False)
    (tmp_path / "a" / "bad.jpg").write_bytes(b"nope")
    with pytest.raises(ValueError, match="No decodable images"):
        idfd(tmp_path, on_error="skip", verbose=False)


def test_every_fuzz_regression_is_refused_cleanly():
    for path in sorted((FIX / "fuzz_regressions").iterdir()):
        with pytest.raises(ValueError):
            _engine.decode_image(path.read_bytes())


def test_memory_stays_bounded_on_hostile_files(tmp_path):
    files, corrupt = bad_files()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for data in list(files.values()) + [corrupt, (FIX / "fuzz_regressions" / "png_idat_claims_1gb.bin").read_bytes()]:
        try:
            _engine.decode_image(data)
        except ValueError:
            pass
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB
