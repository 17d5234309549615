"""Weights round trip with Keras 3 (fixtures: tests/fixtures/make_weights_fixtures.py, with
TensorFlow, and make_catdog_weight_files.py, with catdog): the lab's model at alpha 0.35,
96x96, in the fine-tuning state.

* Keras -> catdog: the `.weights.h5` Keras 3 wrote and the legacy nested h5 load into
  catdog's lab model, which then predicts what Keras predicted.
* catdog -> Keras: the files catdog wrote after training were loaded by Keras when the
  fixtures were made; catdog predicts from them what Keras predicted from them. And catdog
  still writes those files the same way: same layout (paths, layer names, shapes) as
  Keras's own files and the same weights as the committed ones."""
import importlib.util
import json

import h5py
import numpy as np
import pytest

import catdog
from conftest import FIXTURES, assert_close_rel

FWD_REL = 1e-4
IO = dict(np.load(FIXTURES / "weights_roundtrip.npz"))
META = json.loads(str(IO["meta"]))
KERAS3, LEGACY = FIXTURES / "lab_a035_96.weights.h5", FIXTURES / "lab_a035_96_legacy.h5"
CATDOG_FILES = ("catdog_lab_a035_96.weights.h5", "catdog_lab_a035_96_legacy.h5")


def _maker():
    spec = importlib.util.spec_from_file_location(
        "make_catdog_weight_files", FIXTURES.parent / "make_catdog_weight_files.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MAKER = _maker()


def h5_tree(path):
    """{dataset path: shape} and {group path: name attribute} of an h5 file."""
    shapes, names = {}, {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                shapes[name] = obj.shape
            elif "name" in obj.attrs and not name.startswith(("layers/rescaling", "layers/input")):
                names[name] = obj.attrs["name"]  # (weightless, auto-named in catdog)
        f.visititems(visit)
    return shapes, names


@pytest.mark.parametrize("path", [KERAS3, LEGACY], ids=["keras3", "legacy"])
def test_catdog_loads_what_keras_saved(path):
    model = MAKER.lab_model()
    before = model.predict(IO["x"])
    model.load_weights(path)
    pred = model.predict(IO["x"])
    assert_close_rel(pred, IO["pred"], FWD_REL, f"{path.name} predictions")
    assert np.abs(before - IO["pred"]).max() > 10 * FWD_REL * np.abs(IO["pred"]).max()


def test_keras_loaded_what_catdog_saved():
    assert sorted(META["catdog_files"]) == sorted(CATDOG_FILES), "regenerate the fixtures"
    for name in CATDOG_FILES:
        # the weights catdog trained, not Keras's originals
        assert META[f"max_weight_change/{name}"] > 1e-4
        model = MAKER.lab_model()
        model.load_weights(FIXTURES / name)
        assert_close_rel(model.predict(IO["x"]), IO[f"keras_pred/{name}"], FWD_REL,
                         f"Keras's predictions from {name}")


def test_catdog_writes_the_committed_files(tmp_path):
    MAKER.main(str(tmp_path))
    for name, keras_file in zip(CATDOG_FILES, (KERAS3, LEGACY)):
        shapes, names = h5_tree(tmp_path / name)
        committed_shapes, committed_names = h5_tree(FIXTURES / name)
        assert shapes == committed_shapes and names == committed_names, name
        with h5py.File(tmp_path / name, "r") as a, h5py.File(FIXTURES / name, "r") as b:
            for key in shapes:
                np.testing.assert_allclose(a[key][()], b[key][()], rtol=0, atol=2e-5,
                                           err_msg=f"{name}:{key}")
        if keras_file is KERAS3:
            # every weight at the path Keras uses, under the layer name Keras records
            keras_shapes, keras_names = h5_tree(keras_file)
            assert shapes == keras_shapes
            weighted = {k.rsplit("/", 1)[0] for k in keras_shapes}
            assert {k: v for k, v in names.items() if k in weighted} == \
                {k: v for k, v in keras_names.items() if k in weighted}


def test_legacy_file_nests_the_base_as_keras_does(tmp_path):
    model = MAKER.lab_model()
    model.load_weights(KERAS3)
    model.save_weights(tmp_path / "lab.h5")
    with h5py.File(tmp_path / "lab.h5", "r") as mine, h5py.File(LEGACY, "r") as keras:
        base = "mobilenetv2_0.35_96"
        assert base in mine and "Conv1" not in mine
        strip = lambda names: [n.decode() if isinstance(n, bytes) else n for n in names]
        mine_names = [n.replace(":0", "") for n in strip(mine[base].attrs["weight_names"])]
        keras_names = strip(keras[base].attrs["weight_names"])
        # the same order (trainable first); catdog says depthwise_kernel where Keras 3 says kernel
        assert [n.replace("depthwise_kernel", "kernel") for n in mine_names] == keras_names
        for m, k in zip(strip(mine[base].attrs["weight_names"]), keras_names):
            np.testing.assert_array_equal(mine[base][m][()], keras[base][k][()])


def test_keras3_file_of_another_model_is_refused(tmp_path):
    other = catdog.Sequential([catdog.Input((8, 8, 3)).layer, catdog.layers.Conv2D(4, 3),
                               catdog.layers.GlobalAveragePooling2D(), catdog.layers.Dense(2)])
    model = MAKER.lab_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="lab_a035_96.weights.h5"):
        other.load_weights(KERAS3)
    other_path = tmp_path / "other.weights.h5"
    other.save_weights(other_path)
    with pytest.raises(ValueError, match="other.weights.h5"):
        model.load_weights(other_path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
