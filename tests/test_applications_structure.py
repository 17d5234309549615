"""catdog.applications' builders against Keras 3.15's (keras/src/applications/resnet.py,
vgg16.py, mobilenet_v3.py, efficientnet.py, imagenet_utils.py): every layer's name, class,
output shape and parameter count in Keras's order, the model's counts, and Keras's argument
errors. Fixture: tests/fixtures/applications/structure.json (make_application_fixtures.py)."""
import json
import warnings

import numpy as np
import pytest

import catdog
from catdog import applications
from catdog.layers.core import reset_name_counters
from conftest import FIXTURES


@pytest.fixture(autouse=True)
def _keep_name_counters():
    """These tests build many auto-named layers and reset the counters; afterwards the
    process's counters are as before, so later tests' auto-names do not depend on them."""
    from catdog.layers import core

    saved = dict(core._counters)
    yield
    core._counters.clear()
    core._counters.update(saved)


STRUCTURE = json.loads((FIXTURES.parent / "applications" / "structure.json").read_text())
VARIANTS = STRUCTURE["variants"]


def builder(name):
    if not hasattr(applications, name):
        pytest.skip(f"catdog.applications.{name} is not built yet")
    return getattr(applications, name)


def fresh_build(name, **kwargs):
    """Build in a fresh naming state, as the fixture did after keras.backend.clear_session()."""
    reset_name_counters()
    kwargs = dict(kwargs)
    kwargs.setdefault("weights", None)
    if "input_shape" in kwargs:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    return builder(name)(**kwargs)


def catdog_layers(model):
    return [[l.name, type(l).__name__, list(l.output_shape), l.count_params()] for l in model.layers]


def counts(model):
    return {"total": model.count_params(),
            "trainable": int(sum(w.size for w in model.trainable_weights)),
            "non_trainable": int(sum(w.size for w in model.non_trainable_weights))}


@pytest.mark.parametrize("key", [k for k, v in VARIANTS.items()
                                 if v["kwargs"].get("weights") != "imagenet"])
def test_layer_list_and_counts_match_keras(key):
    v = VARIANTS[key]
    model = fresh_build(v["builder"], **v["kwargs"])
    got, want = catdog_layers(model), v["layers"]
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{key}: layer {i} is {g}, Keras's is {w}"
    assert len(got) == len(want), f"{key}: {len(got)} layers, Keras {len(want)}"
    assert counts(model) == v["counts"]
    assert model.name == v["name"]


def test_issue_parameter_counts_at_224():
    """The issue's numbers (Keras 3.15, 224x224, include_top=False), from the fixture and from
    catdog."""
    issue = {"ResNet50": 23_587_712, "VGG16": 14_714_688, "MobileNetV3Small": 939_120,
             "MobileNetV3Large": 2_996_352, "EfficientNetB0": 4_049_571}
    for name, n in issue.items():
        assert VARIANTS[f"{name}/notop224"]["counts"]["total"] == n
        if hasattr(applications, name):
            m = fresh_build(name, include_top=False, input_shape=(224, 224, 3))
            assert m.count_params() == n, name


def test_names_continue_counting_like_keras():
    """A second MobileNetV3Small in one session: Keras's auto-names go on counting (the fixture
    recorded them); catdog's counters do the same."""
    first = fresh_build("MobileNetV3Small", include_top=False, input_shape=(64, 64, 3))
    second = applications.MobileNetV3Small(include_top=False, input_shape=(64, 64, 3), weights=None)
    new = [l.name for l in second.layers if l.name not in {x.name for x in first.layers}][:6]
    assert new == STRUCTURE["second_build_names"]


def test_keras_order_differs_from_execution_order_for_resnet():
    """Keras lists conv2_block1_0_conv (the shortcut) after conv2_block1_2_relu: its map_graph
    depth order, which base.layers[:k] relies on."""
    m = fresh_build("ResNet50", include_top=False, input_shape=(64, 64, 3))
    names = [l.name for l in m.layers]
    assert names.index("conv2_block1_2_relu") < names.index("conv2_block1_0_conv") \
        < names.index("conv2_block1_3_conv") < names.index("conv2_block1_0_bn")
    assert m.get_layer(index=143).name == "conv5_block1_1_conv"


@pytest.mark.parametrize("name", ["ResNet50", "VGG16"])
def test_caffe_family_argument_errors(name, tmp_path):
    build = builder(name)
    with pytest.raises(ValueError, match="`weights` argument should be either"):
        build(weights="no/such/file.h5")
    with pytest.raises(ValueError, match="`classes` should be 1000"):
        build(weights="imagenet", include_top=True, classes=10)
    with pytest.raises(ValueError, match="at least 32x32"):
        build(weights=None, include_top=False, input_shape=(31, 64, 3))
    with pytest.raises(ValueError, match="should be \\(224, 224, 3\\)"):
        build(weights="imagenet", include_top=True, input_shape=(160, 160, 3))
    with pytest.raises(ValueError, match="3 channels"):
        build(weights="imagenet", include_top=False, input_shape=(64, 64, 1))
    with pytest.raises(ValueError, match="three integers"):
        build(weights=None, include_top=False, input_shape=(64, 64))
    with pytest.raises(ValueError, match="Only `None` and `softmax`"):
        f = tmp_path / "w.h5"
        f.write_bytes(b"")
        build(weights=str(f), include_top=True, classifier_activation="sigmoid")
    with pytest.raises(ValueError, match="pooling"):
        build(weights=None, include_top=False, input_shape=(32, 32, 3), pooling="mean")
    with pytest.warns(UserWarning, match="1 or 3 input channels"):
        build(weights=None, include_top=False, input_shape=(32, 32, 4))


@pytest.mark.parametrize("name", ["MobileNetV3Small", "MobileNetV3Large"])
def test_mobilenet_v3_argument_errors(name):
    build = builder(name)
    with pytest.raises(ValueError, match="`weights` argument should be either"):
        build(weights="nope.h5")
    with pytest.raises(ValueError, match="`classes` should be 1000"):
        build(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="at least 32x32"):
        build(weights=None, input_shape=(32, 31, 3))
    with pytest.raises(ValueError, match="alpha can be one of"):
        build(weights="imagenet", alpha=0.5, include_top=False)
    with pytest.raises(ValueError, match="alpha can be one of"):
        build(weights="imagenet", alpha=0.75, minimalistic=True, include_top=False)
    with pytest.raises(ValueError, match="input_shape\\[1\\] must equal"):
        build(weights=None, input_tensor=catdog.Input((64, 64, 3)), input_shape=(64, 96, 3))
    m = build(weights=None, include_top=False)  # Keras: (None, None, 3), top or not
    assert m.input_shape == (None, None, 3)
    assert build(weights=None).input_shape == (None, None, 3)


def test_input_tensor_is_used():
    inp = catdog.Input((48, 48, 3))
    m = builder("ResNet50")(include_top=False, weights=None, input_tensor=inp)
    assert m.layers[0] is inp.layer and m.output_shape == (2, 2, 2048)


def test_classifier_tops_run_and_softmax_sums_to_one():
    rng = np.random.default_rng(0)
    for name, size, classes in (("VGG16", 32, 7), ("ResNet50", 32, 5), ("MobileNetV3Small", 64, 3)):
        m = fresh_build(name, include_top=True, input_shape=(size, size, 3), classes=classes)
        p = m.predict(rng.uniform(0, 255, (2, size, size, 3)).astype(np.float32))
        assert p.shape == (2, classes)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_preprocess_input_as_keras():
    """keras/src/applications/imagenet_utils.py _preprocess_numpy_input, mode "caffe": BGR and
    the mean (103.939, 116.779, 123.68) subtracted, no scaling; MobileNetV3's is identity."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 4, 5, 3)).astype(np.uint8)
    want = x[..., ::-1].astype(np.float32) - np.array([103.939, 116.779, 123.68], np.float32)
    for mod in (applications.resnet50, applications.resnet, applications.vgg16):
        got = mod.preprocess_input(x.copy())
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    f = x.astype(np.float32)
    assert applications.mobilenet_v3.preprocess_input(f) is f
    with pytest.raises(ValueError, match="channels"):
        applications.vgg16.preprocess_input(np.zeros((2, 4, 4, 1), np.float32))


def test_decode_predictions_rejects_bad_shapes():
    for mod in (applications.resnet50, applications.vgg16, applications.mobilenet_v3,
                applications.mobilenet_v2):
        with pytest.raises(ValueError, match="shape \\(samples, 1000\\)"):
            mod.decode_predictions(np.zeros((2, 10)))


def test_imagenet_warning_for_non_224_mobilenet_v3(monkeypatch):
    """Keras warns and loads the 224 weights for another size; catdog asks for the same file."""
    from catdog import weights as weights_mod

    asked = []

    def fake_fetch(name, **kw):
        asked.append(name)
        raise RuntimeError("stop")

    monkeypatch.setattr(weights_mod, "fetch_named", fake_fetch)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="stop"):
            applications.MobileNetV3Large(input_shape=(160, 160, 3), include_top=False)
    assert any("(224, 224) will be loaded" in str(x.message) for x in w)
    assert asked == ["weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5"]


def test_efficientnet_imagenet_layer_list_has_the_extra_rescaling(monkeypatch):
    """keras/src/applications/efficientnet.py: with weights="imagenet" a Rescaling by
    1/sqrt(std) per channel follows the Normalization; not with None or a file."""
    builder("EfficientNetB0")
    from catdog import weights as weights_mod
    from catdog.applications import _build

    monkeypatch.setattr(weights_mod, "fetch_named", lambda name, **kw: name)
    monkeypatch.setattr(_build, "load_weights", lambda model, path: None)
    v = VARIANTS["EfficientNetB0/notop224_imagenet"]
    model = fresh_build("EfficientNetB0", **v["kwargs"])
    assert catdog_layers(model) == v["layers"]
    assert counts(model) == v["counts"]
    plain = [l[0] for l in VARIANTS["EfficientNetB0/notop224"]["layers"]]
    assert [l[0] for l in v["layers"]] == plain[:3] + ["rescaling_1"] + plain[3:]
    # the extra layer scales each channel by 1/sqrt(std)
    x = np.full((1, 224, 224, 3), 255.0, np.float32)
    got = model.layer_outputs(x, ["rescaling_1"])["rescaling_1"][0, 0, 0]
    np.testing.assert_allclose(got, 1.0 / np.sqrt([0.229, 0.224, 0.225]), rtol=1e-6)


def test_keras_file_round_trip_keeps_keras_order(tmp_path):
    """A .keras file's weights sit at paths counted in model.layers order, on save and on
    load: both use Keras's order (catdog.models.keras_layer_order), so ResNet50's shortcut
    convolutions come back where they were."""
    m = fresh_build("ResNet50", include_top=False, input_shape=(32, 32, 3), pooling="avg")
    path = tmp_path / "resnet50.keras"
    m.save(str(path))
    back = catdog.models.load_model(str(path))
    assert [l.name for l in back.layers] == [l.name for l in m.layers]
    x = np.random.default_rng(4).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), m.predict(x))


def test_efficientnet_imagenet_keras_file_round_trip(monkeypatch, tmp_path):
    """The per-channel Rescaling is written as Keras writes it (a Rescaling whose scale is a
    list) and read back as such."""
    builder("EfficientNetB0")
    from catdog import weights as weights_mod
    from catdog.applications import _build, efficientnet

    monkeypatch.setattr(weights_mod, "fetch_named", lambda name, **kw: name)
    monkeypatch.setattr(_build, "load_weights", lambda model, path: None)
    m = fresh_build("EfficientNetB0", include_top=False, weights="imagenet", input_shape=(32, 32, 3))
    path = tmp_path / "effb0.keras"
    m.save(str(path))
    import zipfile

    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    rescale = next(l for l in config["config"]["layers"] if l["name"] == "rescaling_1")
    assert rescale["class_name"] == "Rescaling"
    np.testing.assert_allclose(rescale["config"]["scale"], 1 / np.sqrt([0.229, 0.224, 0.225]))
    back = catdog.models.load_model(str(path))
    assert isinstance(back.get_layer("rescaling_1"), efficientnet.Rescaling)
    x = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), m.predict(x))
