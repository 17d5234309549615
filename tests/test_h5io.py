"""catdog.h5io: Keras legacy HDF5 and catdog .npz weights, round trips and clear errors."""
import os
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np
import pytest

from catdog import h5io

SHARED = Path(os.environ.get("CATDOG_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SHARED_H5 = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("CATDOG_HOME", str(tmp_path / "home"))


def _small():
    rng = np.random.default_rng(0)
    return OrderedDict(
        [
            ("input_1", []),
            ("Conv1", [("kernel", rng.standard_normal((3, 3, 3, 4)).astype(np.float32))]),
            (
                "bn_Conv1",
                [
                    ("gamma", np.ones(4, np.float32)),
                    ("beta", np.zeros(4, np.float32)),
                    ("moving_mean", rng.standard_normal(4).astype(np.float32)),
                    ("moving_variance", np.full(4, 2.0, np.float32)),
                ],
            ),
            ("Conv1_relu", []),
            ("dense", [("kernel", rng.standard_normal((4, 1)).astype(np.float32)), ("bias", np.zeros(1, np.float32))]),
        ]
    )


def _expected(ws):
    return [(layer, [(n, a.shape) for n, a in items]) for layer, items in ws.items()]


def _same(a, b):
    assert list(a) == list(b)
    for layer in a:
        assert [n for n, _ in a[layer]] == [n for n, _ in b[layer]], layer
        for (_, x), (_, y) in zip(a[layer], b[layer]):
            assert x.dtype == np.float32 and x.shape == y.shape
            np.testing.assert_array_equal(x, y)


def test_keras_h5_round_trip_and_layout(tmp_path):
    ws = _small()
    p = h5io.write_keras_h5(tmp_path / "m.h5", ws)
    assert p == tmp_path / "m.h5"
    assert sorted(os.listdir(tmp_path)) == ["m.h5"]  # no temp file left behind
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask  # like any file, not the temp file's 0600
    with h5py.File(p, "r") as f:  # exactly Keras's legacy layout
        assert [n.decode() for n in f.attrs["layer_names"]] == list(ws)
        assert f.attrs["backend"] in ("tensorflow", b"tensorflow")
        assert [n.decode() for n in f["bn_Conv1"].attrs["weight_names"]] == [
            "bn_Conv1/gamma:0", "bn_Conv1/beta:0", "bn_Conv1/moving_mean:0", "bn_Conv1/moving_variance:0"]
        assert f["Conv1/Conv1/kernel:0"].shape == (3, 3, 3, 4)
        assert len(f["input_1"].attrs["weight_names"]) == 0
    _same(h5io.read_keras_h5(p), ws)
    _same(h5io.read_weights(p), ws)  # detected by content


def test_catdog_format_round_trip_with_metadata(tmp_path):
    ws = _small()
    p = h5io.write_weights(tmp_path / "m.catdog", ws, metadata={"epoch": 3})
    back, meta = h5io.read_catdog(p, with_metadata=True)
    _same(back, ws)
    assert meta == {"epoch": 3}
    _same(h5io.read_weights(p), ws)
    with np.load(p, allow_pickle=False) as z:  # plain NumPy can read it
        assert "__catdog__" in z.files and z["w00000"].shape == (3, 3, 3, 4)
    assert sorted(os.listdir(tmp_path)) == ["m.catdog"]


def test_nested_model_weight_names_and_chunked_attributes(tmp_path):
    # a whole-model file: the base model is one layer whose weights carry inner layer names,
    # and enough layers that Keras would split layer_names into layer_names0, layer_names1, ...
    nested = OrderedDict([("mobilenetv2_1.00_160", [("Conv1/kernel", np.ones((1, 1, 1, 1), np.float32)),
                                                      ("bn_Conv1/gamma", np.ones(1, np.float32))])])
    for i in range(3000):
        nested[f"a_rather_long_layer_name_number_{i:05d}"] = []
    p = h5io.write_keras_h5(tmp_path / "n.h5", nested)
    with h5py.File(p, "r") as f:
        assert "layer_names" not in f.attrs and "layer_names0" in f.attrs and "layer_names1" in f.attrs
        assert [n.decode() for n in f["mobilenetv2_1.00_160"].attrs["weight_names"]] == ["Conv1/kernel:0", "bn_Conv1/gamma:0"]
    _same(h5io.read_keras_h5(p), nested)


def test_whole_model_h5_with_model_weights_group(tmp_path):
    p = tmp_path / "model.h5"
    with h5py.File(p, "w") as f:
        f.attrs["model_config"] = b"{}"
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([b"dense"])
        d = g.create_group("dense")
        d.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
        d.create_dataset("dense/kernel:0", data=np.ones((2, 1), np.float64))
        d.create_dataset("dense/bias:0", data=np.zeros(1, np.float16))
    ws = h5io.read_weights(p)
    assert list(ws) == ["dense"] and [n for n, _ in ws["dense"]] == ["kernel", "bias"]
    assert all(a.dtype == np.float32 for _, a in ws["dense"])


def test_missing_file_not_h5_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        h5io.read_weights(tmp_path / "nope.h5")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        h5io.read_keras_h5(tmp_path / "nope.h5")
    txt = tmp_path / "notes.h5"
    txt.write_text("hello")
    with pytest.raises(ValueError, match="notes.h5.*not a weights file"):
        h5io.read_weights(txt)
    with pytest.raises(ValueError, match="notes.h5.*not a readable HDF5"):
        h5io.read_keras_h5(txt)
    with pytest.raises(ValueError, match="notes.h5.*not a catdog weights file"):
        h5io.read_catdog(txt)
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        h5io.read_weights(empty)
    # a truncated HDF5 file
    good = h5io.write_keras_h5(tmp_path / "good.h5", _small())
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.h5"):
        h5io.read_weights(cut)
    # a truncated catdog file
    goodc = h5io.write_catdog(tmp_path / "good.npz", _small())
    cutc = tmp_path / "cut.npz"
    cutc.write_bytes(goodc.read_bytes()[:300])
    with pytest.raises(ValueError, match="cut.npz.*corrupt"):
        h5io.read_weights(cutc)
    # HDF5 but not Keras weights; Keras 3 layout gets its own hint
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=[1, 2])
    with pytest.raises(ValueError, match="other.h5.*not Keras weights"):
        h5io.read_weights(other)
    k3 = tmp_path / "model.weights.h5"
    with h5py.File(k3, "w") as f:
        f.create_group("layers/dense/vars").create_dataset("0", data=np.ones((2, 1)))
    with pytest.raises(ValueError, match="Keras 3"):
        h5io.read_weights(k3)
    with pytest.raises(ValueError, match="folder"):
        h5io.read_weights(tmp_path)


def test_check_weights_missing_extra_and_shapes():
    ws = _small()
    exp = _expected(ws)
    out = h5io.check_weights(ws, exp)
    assert list(out) == ["Conv1", "bn_Conv1", "dense"]  # weightless layers do not count
    # weightless layers may differ (input_2 vs input_1)
    h5io.check_weights(ws, [("input_2", [])] + exp[1:])
    with pytest.raises(ValueError, match=r"m\.h5: .*missing layers 'head'"):
        h5io.check_weights(ws, exp + [("head", [("kernel", (4, 1))])], source="m.h5")
    with pytest.raises(ValueError, match="unexpected layers 'dense'"):
        h5io.check_weights(ws, exp[:-1])
    many = [(f"extra_{i}", [("kernel", (1,))]) for i in range(20)]
    with pytest.raises(ValueError, match=r"missing layers 'extra_0', .*\.\.\. \(20 in all\)"):
        h5io.check_weights(ws, exp + many)
    bad = [(l, [(n, (5,) if n == "gamma" else s) for n, s in w]) for l, w in exp]
    with pytest.raises(ValueError, match=r"layer bn_Conv1, weight gamma: shape \(4,\) in the file, \(5,\) in the model"):
        h5io.check_weights(ws, bad)
    renamed = [(l, [("scale" if n == "gamma" else n, s) for n, s in w]) for l, w in exp]
    with pytest.raises(ValueError, match="layer bn_Conv1: missing weights 'scale'; unexpected weights 'gamma'"):
        h5io.check_weights(ws, renamed)


def test_check_weights_by_position_like_keras():
    ws = _small()
    exp = [("dense_7" if l == "dense" else l, w) for l, w in _expected(ws)]
    out = h5io.check_weights(ws, exp, by_name=False)
    assert list(out) == ["Conv1", "bn_Conv1", "dense_7"]
    np.testing.assert_array_equal(out["dense_7"][0][1], ws["dense"][0][1])
    with pytest.raises(ValueError, match="3 layers with weights, the file 2"):
        h5io.check_weights(OrderedDict(list(ws.items())[:3]), exp, by_name=False)
    bad = exp[:-1] + [("dense_7", [("kernel", (4, 2)), ("bias", (1,))])]
    with pytest.raises(ValueError, match=r"layer dense_7 \(file: dense\), weight kernel: shape \(4, 1\) in the file, \(4, 2\)"):
        h5io.check_weights(ws, bad, by_name=False)


def test_writes_are_atomic(tmp_path, monkeypatch):
    p = h5io.write_keras_h5(tmp_path / "w.h5", _small())
    before = p.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5io.os, "replace", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        h5io.write_keras_h5(tmp_path / "w.h5", OrderedDict([("x", [("k", np.ones(3))])]))
    with pytest.raises(RuntimeError, match="disk full"):
        h5io.write_catdog(tmp_path / "w.npz", _small())
    assert sorted(os.listdir(tmp_path)) == ["w.h5"]  # old file intact, no temp files
    assert p.read_bytes() == before
    monkeypatch.undo()
    with pytest.raises(ValueError, match="layer"):
        h5io.write_keras_h5(tmp_path / "bad.h5", {"a/b": []})
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        h5io.write_keras_h5(tmp_path / "no_such_dir" / "w.h5", _small())


def test_reads_the_shared_imagenet_file():
    if not SHARED_H5.is_file():
        pytest.skip(f"shared weights not found at {SHARED_H5} (set CATDOG_SHARED to the shared folder)")
    ws = h5io.read_weights(SHARED_H5)
    names = list(ws)
    assert len(names) == 154
    assert names[0] == "input_1" and names[100] == "block_11_expand_relu" and names[-1] == "out_relu"
    conv1 = dict(ws["Conv1"])
    assert conv1["kernel"].shape == (3, 3, 3, 32) and conv1["kernel"].dtype == np.float32
    assert [n for n, _ in ws["bn_Conv1"]] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert dict(ws["block_1_depthwise"])["depthwise_kernel"].shape == (3, 3, 96, 1)
    assert h5io.count_values(ws) == 2257984
    # it passes a by-name check against itself, and survives a catdog-format round trip
    h5io.check_weights(ws, _expected(ws))
