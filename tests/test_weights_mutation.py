"""Weights files a user hands catdog are parsed safely (issue 23, weights): the mutation
harness's CI subset (tests/weights_mutations.py; the full set is its script, counts in
docs/bad_input.md), plus the cases the issue names, checked value by value."""
import shutil
import time

import h5py
import numpy as np
import pytest

import catdog
from catdog import h5io
from conftest import SHARED_WEIGHTS, needs_shared_weights

import weights_mutations as wm


def test_harness_ci_subset_has_no_wrong_unclear_crash_or_hang(tmp_path):
    results = wm.run("ci", tmp=tmp_path)
    table = wm.counts(results)
    bad = [f"{r['outcome']}: {r['id']}: {r['detail'][:300]}" for r in results if r["outcome"] in wm.BAD]
    assert not bad, "\n".join(bad)
    # every class of mutation is pinned, in both layouts, with refusals and correct loads
    assert {"dtype", "shape", "link", "names", "truncation"} <= set(table)
    for cls in ("dtype", "names", "truncation"):
        assert table[cls]["error"] > 0 and table[cls]["load"] > 0, (cls, table[cls])
    for cls in ("shape", "link"):
        assert table[cls]["error"] > 0 and table[cls]["load"] == 0, (cls, table[cls])
    bases = {r["id"].split(" | ")[0] for r in results}
    assert {"tiny-legacy", "tiny-keras3", "mnv2-legacy", "mnv2-keras3"} <= bases
    if SHARED_WEIGHTS.is_file():
        assert "shared-legacy" in bases
    assert len(results) >= 150


def test_harness_counts_a_crash_and_a_hang(tmp_path):
    results = wm.run("selftest", tmp=tmp_path, timeout=3)
    assert [r["outcome"] for r in results] == ["CRASH", "HANG", "load"]


def _mnv2(alpha=1.0):
    return catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=alpha,
                                           include_top=False, weights=None)


@needs_shared_weights
def test_the_issues_string_dtype_file_is_refused(tmp_path):
    # Conv1/kernel:0 as astype("S4"): "0.01"-like truncated text, which used to load silently
    path = tmp_path / "s4.h5"
    shutil.copyfile(SHARED_WEIGHTS, path)
    with h5py.File(path, "r+") as f:
        g = f["Conv1"]
        kernel = g["Conv1/kernel:0"][()]
        del g["Conv1/kernel:0"]
        g.create_dataset("Conv1/kernel:0", data=kernel.astype("S4"))
    model = _mnv2()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"s4\.h5: layer 'Conv1', weight 'kernel' is stored as "
                                         r"text \(dtype \|S4\)"):
        model.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    model.load_weights(SHARED_WEIGHTS)  # the unmutated file loads
    np.testing.assert_array_equal(model.get_layer("Conv1").get_weights()[0], kernel)


def _file(tmp_path, name, data, **attrs):
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"dense"])
        g = f.create_group("dense")
        g.attrs["weight_names"] = np.array([b"dense/kernel:0"])
        ds = g.create_dataset("dense/kernel:0", data=data)
        for k, v in attrs.items():
            ds.attrs[k] = v
    return path


def test_number_types_convert_exactly(tmp_path):
    v = np.array([[0.1, -2.5e-3], [3.0e4, 1e-30]], np.float32)
    for dt in (">f4", "<f8", ">f8"):  # other byte orders and float64 of float32 values: exact
        got = h5io.read_weights(_file(tmp_path, f"{dt[1:]}{ord(dt[0])}.h5", v.astype(dt)))
        assert got["dense"][0][1].dtype == np.float32
        np.testing.assert_array_equal(got["dense"][0][1], v)
    half = h5io.read_weights(_file(tmp_path, "f2.h5", v.astype(">f2")))["dense"][0][1]
    np.testing.assert_array_equal(half, v.astype(np.float16).astype(np.float32))
    ints = np.array([[-128, 7], [2**24 + 1, 0]], ">i8")  # as Keras (tf.cast): nearest float32
    got = h5io.read_weights(_file(tmp_path, "i8.h5", ints))["dense"][0][1]
    np.testing.assert_array_equal(got, [[-128.0, 7.0], [16777216.0, 0.0]])
    bits = np.array([[0x3FC0, 0xC010], [0x7F7F, 0x0001]], "<u2")  # Keras 3's bfloat16
    got = h5io.read_weights(_file(tmp_path, "bf16.h5", bits.view("V2"), dtype="bfloat16"))
    np.testing.assert_array_equal(got["dense"][0][1][0], [1.5, -2.25])
    assert got["dense"][0][1][1, 0] == np.float32(3.3895314e38)


@pytest.mark.parametrize("data, words", [
    (np.array([[1.0]]).astype("S4"), "text (dtype |S4)"),
    (np.array([[True]]), "an enum (HDF5 stores bool so) (dtype bool)"),
    (np.array([[1 + 2j]], np.complex64), "complex64"),
    (np.array([[1.0]], np.longdouble), "floats of 16 bytes"),
    (np.array([[1e300]]), "beyond float32's range"),
])
def test_other_types_are_refused_naming_layer_and_dtype(tmp_path, data, words):
    with pytest.raises(ValueError, match="layer 'dense', weight 'kernel'") as e:
        h5io.read_weights(_file(tmp_path, "bad.h5", data))
    assert words in str(e.value)


def test_links_and_outside_storage_are_refused_before_reading(tmp_path):
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as f:
        f["x"] = np.ones((1, 1), np.float32)
    path = _file(tmp_path, "ext.h5", np.ones((1, 1), np.float32))
    with h5py.File(path, "r+") as f:
        del f["dense/dense/kernel:0"]
        f["dense/dense/kernel:0"] = h5py.ExternalLink(str(outside), "/x")
    with pytest.raises(ValueError, match=r"/dense/dense/kernel:0 is an HDF5 ExternalLink .*outside\.h5"):
        h5io.read_weights(path)
    with h5py.File(path, "r+") as f:  # a virtual dataset over the same outside file
        del f["dense/dense/kernel:0"]
        layout = h5py.VirtualLayout(shape=(1, 1), dtype="<f4")
        layout[...] = h5py.VirtualSource(str(outside), "/x", shape=(1, 1))
        f["dense/dense"].create_virtual_dataset("kernel:0", layout)
    with pytest.raises(ValueError, match=r"/dense/dense/kernel:0 is a virtual dataset"):
        h5io.read_weights(path)


def test_enormous_name_list_is_refused_quickly(tmp_path):
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["layer_names"] = np.full(10_000_000, b"layer", dtype="S5")
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="lists more than 100,000 names"):
        h5io.read_weights(path)
    assert time.monotonic() - t0 < 5


def test_catdog_npz_weights_follow_the_same_dtype_rule(tmp_path):
    good = h5io.write_catdog(tmp_path / "w.npz", {"dense": [("kernel", np.ones((2, 1)))]})
    with np.load(good) as z:
        arrays = dict(z)
    arrays["w00000"] = np.array([[0.25], [-1.0]]).astype("S4")  # text parsed silently before
    with open(tmp_path / "s4.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match=r"s4\.npz: layer 'dense', weight 'kernel' is stored as dtype \|S4"):
        h5io.read_weights(tmp_path / "s4.npz")
    arrays["w00000"] = np.array([[0.25], [-1.0]], ">f8")
    with open(tmp_path / "be.npz", "wb") as f:
        np.savez(f, **arrays)
    np.testing.assert_array_equal(h5io.read_weights(tmp_path / "be.npz")["dense"][0][1], [[0.25], [-1.0]])
