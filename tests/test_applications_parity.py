"""catdog's ResNet50, VGG16, MobileNetV3Small/Large and EfficientNetB0 against TensorFlow/Keras
3.15 at small input sizes, with the same seeded weights on both sides (application_weights.py;
no weight file committed): every layer's inference output, the lab head's logits and loss,
every trainable weight's gradient when fine-tuning from a middle layer (both the layer-by-layer
and the training-step paths), BN in training mode, and Keras 3's .weights.h5 layout of each
base. Fixtures: tests/fixtures/make_application_fixtures.py; tolerances as
tests/test_engine_keras.py. Large tensors are summarised in the fixture (absmax, L2 norm, 256
seeded samples, seeded projections that every element enters): see `check`."""
import json
import sys

import h5py
import numpy as np
import pytest

import catdog
from catdog import applications, layers
from catdog.layers.core import reset_name_counters
from conftest import FIXTURES, assert_close_rel, training_step_gradients

sys.path.insert(0, str(FIXTURES.parent))
import application_weights as aw  # noqa: E402

APP_FIXTURES = FIXTURES.parent / "applications"
FWD_REL = 1e-4
GRAD_REL = 1e-3
# fixture -> (builder, input size, Keras's layer the fine-tuning starts at)
CONFIGS = {
    "resnet50_64": ("ResNet50", 64, "conv5_block1_1_conv"),
    "vgg16_32": ("VGG16", 32, "block4_conv1"),
    "mobilenetv3small_75": ("MobileNetV3Small", 75, "expanded_conv_6_expand"),
    "mobilenetv3large_64": ("MobileNetV3Large", 64, "expanded_conv_10_expand"),
    "efficientnetb0_64": ("EfficientNetB0", 64, "block6a_expand_conv"),
}
BN_LAYERS = {"resnet50_64": ["conv1_bn", "conv4_block2_2_bn"], "vgg16_32": [],
             "mobilenetv3small_75": ["conv_bn", "expanded_conv_8_depthwise_bn"],
             "mobilenetv3large_64": ["conv_bn", "expanded_conv_12_project_bn"],
             "efficientnetb0_64": ["stem_bn", "block4b_bn"]}

_io_cache = {}


def load(key):
    if key not in _io_cache:
        _io_cache[key] = dict(np.load(APP_FIXTURES / f"{key}.npz"))
    return _io_cache[key]


def spec_of(model):
    return [(l.name, [(n, w.shape) for n, w, _ in l._weights]) for l in model.layers if l._weights]


def seeded_base(key):
    """The base as the fixture built it, with the same seeded weights (checked by fingerprint)."""
    name, size, _ = CONFIGS[key]
    if not hasattr(applications, name):
        pytest.skip(f"catdog.applications.{name} is not built yet")
    io = load(key)
    reset_name_counters()  # the fixture's names: built after keras.backend.clear_session()
    base = getattr(applications, name)(include_top=False, weights=None, input_shape=(size, size, 3))
    wd = aw.weights_for(spec_of(base), int(io["seed"]), float(io["gain"]))
    assert aw.fingerprint(wd) == json.loads(str(io["fingerprint"])), \
        "the seeded generator gives other numbers here than in the fixture's run"
    for l in base.layers:
        if l._weights:
            l.set_weights([wd[l.name][n] for n, _, _ in l._weights])
    return base, io, wd


def check(got, io, key, rel, seed):
    """Whole arrays: max|a - b| <= rel * max|b|. Summaries: the shape; max|.| within rel; the
    256 seeded samples within rel * max|b|; the L2 norm within rel; and each seeded projection
    r.a (r ~ N(0, 1), every element counts) within 4 * rel * ||b||: a relative L2 error above
    rel anywhere in the tensor shows there."""
    got = np.asarray(got, np.float32)
    if key in io:
        return assert_close_rel(got, io[key], rel, key)
    assert got.shape == tuple(io[key + "/shape"]), f"{key}: shape {got.shape}"
    absmax, l2 = float(io[key + "/absmax"]), float(io[key + "/l2"])
    assert abs(float(np.abs(got).max()) - absmax) <= rel * absmax, f"{key}: max|.|"
    assert_close_rel(got.ravel()[aw.sample_indices(got.size, seed)], io[key + "/sample"], rel,
                     f"{key} (samples)")
    got_l2 = float(np.sqrt(np.sum(got.astype(np.float64) ** 2)))
    assert abs(got_l2 - l2) <= rel * l2, f"{key}: L2 {got_l2} vs {l2}"
    proj = io[key + "/proj"]
    err = np.abs(aw.projections(got, seed, len(proj)) - proj)
    assert np.all(err <= 4 * rel * l2), f"{key}: projections off by {err.max():.3e} (L2 {l2:.3e})"
    return None


@pytest.mark.parametrize("key", list(CONFIGS))
def test_every_layer_output(key):
    base, io, _ = seeded_base(key)
    seed = int(io["seed"])
    names = [l.name for l in base.layers[1:]]
    want = {k[len("out/"):].split("/")[0] for k in io if k.startswith("out/")}
    assert set(names) == want, "the layers differ from the fixture's"
    got = base.layer_outputs(io["x"], names)
    for n in names:
        check(got[n], io, f"out/{n}", FWD_REL, seed)
    assert_close_rel(base.predict(io["x"]), io["base_out"], FWD_REL, "base output")


def lab_model(base, io):
    size = base.input_shape[0]
    inputs = catdog.Input(shape=(size, size, 3))
    x = base(inputs, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    dense = layers.Dense(1, name="dense")
    out = dense(x)
    dense.set_weights([io["head_kernel"], io["head_bias"]])
    return catdog.Model(inputs, out)


@pytest.mark.parametrize("path", ["layer_by_layer", "training_step"])
@pytest.mark.parametrize("key", list(CONFIGS))
def test_fine_tuning_loss_and_gradients(key, path):
    base, io, _ = seeded_base(key)
    seed = int(io["seed"])
    model = lab_model(base, io)
    logits = model.predict_on_batch(io["x"])
    assert_close_rel(logits, io["head/logits"], FWD_REL, "logits")
    loss, _ = catdog._engine.loss(catdog._engine.LOSS_BCE_LOGITS, logits, io["y"])
    assert abs(loss - float(io["head/loss"])) <= 1e-5 * max(1.0, abs(float(io["head/loss"])))

    k = int(io["fine_tune_index"])
    assert base.layers[k].name == CONFIGS[key][2], "Keras's layer k is another layer here"
    base.trainable = True
    for layer in base.layers[:k]:
        layer.trainable = False
    grads = (model.gradients(io["x"], io["y"]) if path == "layer_by_layer"
             else training_step_gradients(model, io["x"], io["y"]))
    keys = [str(s) for s in io["grad_keys"]]
    assert sorted(grads) == sorted(keys), "trainable weights differ from Keras's"
    for name in keys:
        check(grads[name], io, f"grad/{name}", GRAD_REL, seed)
    n_train = sum(w.size for w in model.trainable_weights)
    n_non = sum(w.size for w in model.non_trainable_weights)
    assert [n_train, n_non] == [int(v) for v in io["counts"]]


@pytest.mark.parametrize("key", list(CONFIGS))
def test_batchnorm_training_mode(key):
    base, io, wd = seeded_base(key)
    for layer in base.layers:  # EfficientNet's stochastic depth: off, as in the fixture
        if isinstance(layer, layers.Dropout):
            layer.rate = 0.0
    last = base.layers[-1].name
    got = base.layer_outputs(io["x4"], [last], training=True)[last]
    assert_close_rel(got, io["bntrain/out"], FWD_REL, "training-mode output")
    for lname in BN_LAYERS[key]:
        _, _, mm, mv = base.get_layer(lname).get_weights()
        old_mm, old_mv = wd[lname]["moving_mean"], wd[lname]["moving_variance"]
        assert_close_rel(mm - old_mm, io[f"bntrain/{lname}/moving_mean"] - old_mm, GRAD_REL,
                         f"{lname} moving_mean update")
        assert_close_rel(mv - old_mv, io[f"bntrain/{lname}/moving_variance"] - old_mv, GRAD_REL,
                         f"{lname} moving_variance update")


def write_keras3(path, layout, wd, with_names=True):
    """The file Keras's base.save_weights wrote, group for group, from the seeded weights."""
    with h5py.File(path, "w") as f:
        for where, lname, wnames in layout:
            g = f.create_group(f"{where}/vars" if where else "vars")
            if with_names:
                g.attrs["name"] = lname
            for i, w in enumerate(wnames):
                g.create_dataset(str(i), data=wd[lname][w])


@pytest.mark.parametrize("with_names", [True, False])
@pytest.mark.parametrize("key", list(CONFIGS))
def test_keras3_weights_file_layout_loads(key, with_names, tmp_path):
    """Keras 3's .weights.h5 addresses layers by path (class names counted in Keras's layer
    order); without the name attributes only the paths can match."""
    _, io, wd = seeded_base(key)
    name, size, _ = CONFIGS[key]
    layout = json.loads(str(io["keras3_layout"]))
    f = tmp_path / f"{key}.weights.h5"
    write_keras3(f, layout, wd, with_names)
    reset_name_counters()
    model = getattr(applications, name)(include_top=False, weights=str(f),
                                        input_shape=(size, size, 3))
    for l in model.layers:
        for (n, w, _) in l._weights:
            np.testing.assert_array_equal(w, wd[l.name][n], err_msg=f"{l.name}/{n}")
    # and catdog's own .weights.h5 has Keras's paths
    out = tmp_path / "again.weights.h5"
    model.save_weights(str(out))
    with h5py.File(out, "r") as h:
        paths = []
        h.visititems(lambda n, o: paths.append(n[:-5] if n.endswith("/vars") else None))
    assert sorted(p for p in paths if p) == sorted(p for p, _, _ in layout if p)


def write_legacy(path, model, wd=None):
    """Keras's legacy HDF5 layout, as the official ImageNet files (layer_names in model order,
    <layer>/<layer>/<weight>:0)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([l.name.encode() for l in model.layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for l in model.layers:
            g = f.create_group(l.name)
            names = [f"{l.name}/{n}:0".encode() for n, _, _ in l._weights]
            g.attrs["weight_names"] = np.array(names) if names else np.array([], dtype="S1")
            for (n, w, _), full in zip(l._weights, names):
                g.create_dataset(full.decode(), data=wd[l.name][n] if wd else w)


@pytest.mark.parametrize("key", list(CONFIGS))
def test_legacy_h5_loads_and_gives_keras_outputs(key, tmp_path):
    base, io, wd = seeded_base(key)
    name, size, _ = CONFIGS[key]
    f = tmp_path / "legacy.h5"
    write_legacy(f, base, wd)
    reset_name_counters()
    model = getattr(applications, name)(include_top=False, weights=str(f), input_shape=(size, size, 3))
    assert_close_rel(model.predict(io["x"]), io["base_out"], FWD_REL, "base output")


def test_vgg16_keras1_weight_names_load(tmp_path):
    """The official VGG16 files (2016) name weights `block1_conv1_W_1:0` / `..._b_1:0`, without
    the `<layer>/` prefix; Keras assigns a layer's weights by order, and so does catdog when
    none of the names is the model's."""
    base, io, wd = seeded_base("vgg16_32")
    f = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(f, "w") as h:
        h.attrs["layer_names"] = np.array([l.name.encode() for l in base.layers])
        for l in base.layers:
            g = h.create_group(l.name)
            names = [f"{l.name}_{k}_1:0" for k in ("W", "b")] if l._weights else []
            g.attrs["weight_names"] = (np.array([n.encode() for n in names]) if names
                                       else np.array([], dtype="S1"))
            for n, (wname, _, _) in zip(names, l._weights):
                g.create_dataset(n, data=wd[l.name][wname])
    model = applications.VGG16(include_top=False, weights=str(f), input_shape=(32, 32, 3))
    assert_close_rel(model.predict(io["x"]), io["base_out"], FWD_REL, "base output")
    # a Keras-1 file with a wrong shape is still refused, naming the layer
    with h5py.File(f, "r+") as h:
        del h["block3_conv2"]["block3_conv2_b_1:0"]
        h["block3_conv2"].create_dataset("block3_conv2_b_1:0", data=np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="block3_conv2, weight bias: shape \\(7,\\) in the file"):
        applications.VGG16(include_top=False, weights=str(f), input_shape=(32, 32, 3))
