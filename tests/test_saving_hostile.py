"""Hostile `.keras` files: each is refused with a clear error, nothing runs and nothing is
written anywhere (catdog/saving/safety.py, serialization.py check_tree, keras_format.py).

Keras's own guards are the reference: keras/src/saving/saving_lib.py `_reject_zip_bomb`
(declared size vs stored size) and serialization_lib.py's safe_mode (`__lambda__` refused);
catdog is stricter (no unsafe mode, only Keras classes it supports, no extraction at all).
Every test runs in an empty working folder and checks that the folder holding the file and
the working folder are unchanged afterwards."""
import io
import json
import os
import zipfile

import h5py
import numpy as np
import pytest

import catdog
from catdog import layers
from catdog.saving import safety

def tiny_model():
    catdog.random.set_seed(5)
    return catdog.Sequential([catdog.Input((32, 32, 3)),
                              layers.Conv2D(2, 3, use_bias=False, name="conv2d"),
                              layers.GlobalAveragePooling2D(), layers.Dense(1, name="dense")],
                             name="tiny")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "tiny.keras"
    tiny_model().save(path)
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def make_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """An empty folder as cwd; yields a check that nothing new appeared there or in tmp."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    def refused(path, match):
        before = sorted(os.listdir(tmp_path)), sorted(os.listdir(work))
        with pytest.raises(ValueError, match=match):
            catdog.models.load_model(path)
        assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(work))) == before
        assert not (tmp_path.parent / "evil.txt").exists() and not os.path.exists("/tmp/evil.txt")
    return tmp_path, refused


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt",
                                  "..\\evil.txt", "C:/evil.txt"])
def test_member_names_that_escape(name, good, sandbox):
    tmp, refused = sandbox
    path = make_zip(tmp / "m.keras", {**good, name: b"owned"})
    refused(path, "escapes")


def test_too_many_members(good, sandbox):
    tmp, refused = sandbox
    extra = {f"assets/{i}.txt": b"x" for i in range(safety.MAX_MEMBERS)}
    refused(make_zip(tmp / "m.keras", {**good, **extra}), "archive members, more than")


def test_zip_bomb_member(good, sandbox):
    tmp, refused = sandbox
    bomb = b"\0" * (64 << 20)  # 64 MiB of zeros deflate to ~64 KiB: ratio ~1000
    path = make_zip(tmp / "m.keras", {**good, "model.weights.h5": bomb}, zipfile.ZIP_DEFLATED)
    refused(path, "zip bomb")


def test_member_over_its_bound(good, sandbox, monkeypatch):
    tmp, refused = sandbox
    monkeypatch.setattr(safety, "MAX_JSON_BYTES", 100)  # the bound, scaled down
    refused(make_zip(tmp / "m.keras", good), r"config.json.*bound")


def test_member_lying_about_its_size(good, sandbox):
    """A local header / central directory that declare a smaller size than the data: the
    read stops at the declared size and zipfile's CRC check fails."""
    tmp, refused = sandbox
    path = make_zip(tmp / "m.keras", good)
    raw = bytearray(path.read_bytes())
    assert zipfile.ZipFile(path).getinfo("config.json").file_size > 10
    # config.json's central-directory entry: compressed and uncompressed sizes -> 10 bytes
    pos = raw.find(b"config.json", raw.find(b"PK\x01\x02"))
    entry = raw.rfind(b"PK\x01\x02", 0, pos)
    raw[entry + 20:entry + 28] = (10).to_bytes(4, "little") * 2
    path.write_bytes(bytes(raw))
    refused(path, "config.json|truncated|corrupt|JSON")


def _with_config(good, edit):
    cfg = json.loads(good["config.json"])
    edit(cfg)
    return {**good, "config.json": json.dumps(cfg).encode()}


def test_lambda_layer_refused(good, sandbox):
    tmp, refused = sandbox

    def edit(cfg):
        cfg["config"]["layers"].insert(2, {
            "module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": "evil", "function": {
                "class_name": "__lambda__",
                "config": {"value": ["4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMIAAAAdABkAYMBUwApAk7aBW93bmVkKQHaBXByaW50KQHaAXipAHIEAAAA+gg8c3RkaW4+2gg8bGFtYmRhPgEAAADzAgAAAAgA", None, None]}}}})
    refused(make_zip(tmp / "m.keras", _with_config(good, edit)), "Lambda.*never runs code|'evil'")


def test_lambda_function_anywhere_refused(good, sandbox):
    tmp, refused = sandbox

    def edit(cfg):
        cfg["config"]["layers"][1]["config"]["kernel_initializer"] = {
            "class_name": "__lambda__", "config": {"value": ["AAAA", None, None]}}
    refused(make_zip(tmp / "m.keras", _with_config(good, edit)), "__lambda__")


@pytest.mark.parametrize("module,cls,reg,match", [
    ("os", "system", None, "outside the Keras classes"),
    ("builtins", "eval", None, "outside the Keras classes"),
    ("my_package.layers", "Conv2D", None, "outside the Keras classes"),
    ("keras.layers", "Conv2D", "my_package>Conv2D", "registered_name"),
    ("keras.src.saving.serialization_lib", "enable_unsafe_deserialization", None,
     "does not support"),
])
def test_module_or_registered_name_outside_supported_set(good, sandbox, module, cls, reg, match):
    tmp, refused = sandbox

    def edit(cfg):
        layer = cfg["config"]["layers"][1]
        layer["module"], layer["class_name"], layer["registered_name"] = module, cls, reg
    refused(make_zip(tmp / "m.keras", _with_config(good, edit)), match)


def _weights_edit(good, edit):
    src = io.BytesIO(good["model.weights.h5"])
    buf = io.BytesIO()
    with h5py.File(src, "r") as f, h5py.File(buf, "w") as g:
        for k in f:
            f.copy(k, g)
        for k, v in f.attrs.items():
            g.attrs[k] = v
        edit(g)
    return {**good, "model.weights.h5": buf.getvalue()}


def test_weight_shape_that_does_not_fit(good, sandbox):
    tmp, refused = sandbox

    def edit(g):
        del g["layers/conv2d/vars/0"]
        g["layers/conv2d/vars"].create_dataset("0", data=np.zeros((3, 3, 3, 5), np.float32))
    refused(make_zip(tmp / "m.keras", _weights_edit(good, edit)),
            r"'conv2d' weight 'kernel' has shape \(3, 3, 3, 2\)")


@pytest.mark.parametrize("data", [np.zeros((3, 3, 3, 2), np.int32),
                                  np.array([b"abc"] * 4)])
def test_weight_dtype_that_does_not_fit(good, sandbox, data):
    tmp, refused = sandbox

    def edit(g):
        del g["layers/conv2d/vars/0"]
        g["layers/conv2d/vars"].create_dataset("0", data=data)
    refused(make_zip(tmp / "m.keras", _weights_edit(good, edit)), "not a floating-point type")


def test_missing_and_extra_weights(good, sandbox):
    tmp, refused = sandbox
    refused(make_zip(tmp / "a.keras", _weights_edit(good, lambda g: g.__delitem__("layers/dense"))),
            "no weights for layer 'dense")
    refused(make_zip(tmp / "b.keras", _weights_edit(
        good, lambda g: g["layers/dense/vars"].create_dataset("2", data=np.zeros(1, np.float32)))),
        "'dense' has 2 weights")


def test_truncated_archive(good, sandbox):
    tmp, refused = sandbox
    data = make_zip(tmp / "full.keras", good).read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        (tmp / f"cut{cut}.keras").write_bytes(data[:cut])
        refused(tmp / f"cut{cut}.keras", "truncated|not a .keras|corrupt")


def test_truncated_h5_inside(good, sandbox):
    tmp, refused = sandbox
    h5 = good["model.weights.h5"]
    for cut in (0, 100, len(h5) // 2):
        path = make_zip(tmp / f"h{cut}.keras", {**good, "model.weights.h5": h5[:cut]})
        refused(path, "model.weights.h5 is corrupt or truncated")


@pytest.mark.parametrize("text", [b"", b"{", b"[1, 2]", b"\xff\xfe", b'{"class_name": 3}',
                                  b'{"class_name": "Functional", "module": "keras.src.models.functional", "config": {"layers": 1}}',
                                  b"[" * 100000 + b"]" * 100000])
def test_bad_config_json(good, sandbox, text):
    tmp, refused = sandbox
    refused(make_zip(tmp / "m.keras", {**good, "config.json": text}),
            "config|JSON|Keras object|layers|nested")


def test_not_a_zip_and_missing_members(good, sandbox):
    tmp, refused = sandbox
    (tmp / "x.keras").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    refused(tmp / "x.keras", "not a .keras file")
    refused(make_zip(tmp / "y.keras", {"config.json": good["config.json"]}),
            "no 'model.weights.h5'")


def test_no_unsafe_mode():
    with pytest.raises(ValueError, match="no unsafe mode"):
        catdog.models.load_model("x.keras", safe_mode=False)
    with pytest.raises(ValueError, match="custom_objects"):
        catdog.models.load_model("x.keras", custom_objects={"f": print})


# Inputs scripts/fuzz_keras_load.py found (README: "Fuzzing the .keras loader"): each was
# an uncaught TypeError / NotImplementedError before it became a ValueError.
ZIP_VERSION_21 = (
    "UEsIABd/AABQSwECFAPUAAAAAABoZ4Rdle6kbhsAAAAbAAAADQAAAAAAAAIAAAAAgAEAAAAAbWV0YWRhdGEuanNvblBL"
    "AQIYAxQAAAAAAAAAAABQSwECFAMUAAAAAABoZ4Rdle6kbhsAAAAbAAAADQAAAAAAAAIAAAAAgAEAAAAAbWV0YWRhdGEu"
    "anNvblBLAQIYAxQAAAAAAGhnhF11XDF1KxwAACscAP///2RlbC53ZWlnaHRzLmg1UEsFBgAAAAADAAMAsgAAAKCaAABo"
    "AA==")


def test_fuzz_regressions(sandbox):
    import base64

    tmp, refused = sandbox
    (tmp / "v.keras").write_bytes(base64.b64decode(ZIP_VERSION_21))
    refused(tmp / "v.keras", "corrupt|not a .keras")
    with pytest.raises(ValueError, match="must be strings"):
        catdog.models.model_from_json('{"class_name": "Sequential", "module": {"a": 1}}')
    # ZeroPadding2D after Dense: catdog's layer indexed past the vector's shape (IndexError)
    cfg = json.loads(tiny_model().to_json())
    cfg["config"]["layers"].append({"module": "keras.layers", "class_name": "ZeroPadding2D",
                                    "config": {"name": "pad", "padding": 1},
                                    "registered_name": None})
    with pytest.raises(ValueError, match="'pad'"):
        catdog.models.model_from_json(json.dumps(cfg))


@pytest.mark.parametrize("layer", [
    {"class_name": "Conv2D", "config": {"filters": 65536, "kernel_size": [4, 4]}},
    {"class_name": "SeparableConv2D", "config": {"filters": 65536, "kernel_size": [1, 1]}},
    {"class_name": "DepthwiseConv2D", "config": {"kernel_size": [8, 8], "depth_multiplier": 65536}},
    {"class_name": "Dense", "config": {"units": 1 << 20}, "flat": True},
])
def test_declared_weights_over_the_bound(sandbox, layer):
    """A few bytes of JSON declaring more than MAX_PARAMS (2**28) weights are refused before
    any layer allocates them (catdog/saving/serialization.py `_declared_params`)."""
    from catdog.saving import serialization

    shape = [None, 4096] if layer.pop("flat", False) else [None, 2, 2, 4096]
    entry = {"module": "keras.layers", "registered_name": None, **layer}
    entry["config"] = {"name": "big", **entry["config"]}
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None,
              "config": {"name": "s", "layers": [
                  {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                   "config": {"name": "in", "batch_shape": shape}}, entry]}}
    with pytest.raises(ValueError, match=f"more than {serialization.MAX_PARAMS} weights"):
        catdog.models.model_from_json(json.dumps(config))
