"""Every application catdog builds (catdog/applications/: MobileNetV2, ResNet50, VGG16,
MobileNetV3Small / Large, EfficientNetB0) leaves catdog both ways issue 20 asks for: its
`.keras` file loads back with the same predictions and Keras's layer list, and its ONNX export
runs in ONNX Runtime within 1e-5 relative of predict. TensorFlow's Keras loading these files:
benchmarks/check_keras_saving.py. Small inputs, random weights (BN statistics spread so that
every layer matters)."""
import json
import zipfile

import numpy as np
import pytest

import catdog
from catdog import applications, layers
from conftest import assert_close_rel

APPS = {  # builder, kwargs
    "mobilenet_v2": ("MobileNetV2", dict(input_shape=(32, 32, 3), alpha=0.35, classes=5)),
    "resnet50": ("ResNet50", dict(input_shape=(32, 32, 3), include_top=False, pooling="avg")),
    "vgg16": ("VGG16", dict(input_shape=(32, 32, 3), include_top=False, pooling="max")),
    "mobilenet_v3_small": ("MobileNetV3Small", dict(input_shape=(32, 32, 3), classes=5)),
    "mobilenet_v3_large": ("MobileNetV3Large", dict(input_shape=(32, 32, 3), alpha=0.75,
                                                    include_top=False, pooling="avg")),
    "efficientnet_b0": ("EfficientNetB0", dict(input_shape=(32, 32, 3), classes=5)),
}


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model._leaf_layers():
        values = []
        for wname, w, _ in layer._weights:
            if wname in ("gamma", "moving_variance", "variance"):
                values.append(rng.uniform(0.5, 1.5, w.shape))
            elif wname in ("beta", "moving_mean", "bias", "mean"):
                values.append(rng.normal(0, 0.1, w.shape))
            elif wname == "count":
                values.append(np.float32(10))
            else:
                fan_in = int(np.prod(w.shape[:-1])) if w.ndim > 1 else 1
                if wname == "depthwise_kernel":
                    fan_in = w.shape[0] * w.shape[1]
                values.append(rng.normal(0, 1.15 / np.sqrt(fan_in), w.shape))
        if values:
            layer.set_weights(values)


@pytest.mark.parametrize("key", sorted(APPS))
def test_application_saves_loads_and_exports(key, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the test extra installs onnxruntime")
    builder, kwargs = APPS[key]
    catdog.random.set_seed(5)
    model = getattr(applications, builder)(weights=None, **kwargs)
    randomize(model, 6)
    x = np.random.default_rng(7).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    if key == "mobilenet_v2":  # MobileNetV2 takes preprocess_input's [-1, 1]
        x = x / 127.5 - 1
    want = model.predict(x, verbose=0)
    assert np.abs(want).max() > 1e-3 and np.isfinite(want).all()

    model.save(tmp_path / "m.keras")
    again = catdog.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), want)
    assert [l.name for l in again.layers] == [l.name for l in model.layers]
    config = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))
    assert config["class_name"] == "Functional" and config["config"]["name"] == model.name

    model.export(tmp_path / "m.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert_close_rel(session.run(None, {"inputs": x})[0], want, 1e-5, key)


def test_efficientnet_channel_rescaling(tmp_path):
    """EfficientNet's "imagenet" stem: Rescaling with one scale per channel
    (keras/src/applications/efficientnet.py; catdog/applications/efficientnet.py's Rescaling).
    Its config keeps the list (Keras's Rescaling.get_config), it loads back as that class, and
    ONNX scales per channel."""
    ort = pytest.importorskip("onnxruntime", reason="the test extra installs onnxruntime")
    from catdog.applications.efficientnet import Rescaling as ChannelRescaling

    inputs = catdog.Input((4, 5, 3))
    x = ChannelRescaling([2.0, 0.5, 4.0], name="per_channel")(layers.Normalization(
        mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0])(inputs))
    model = catdog.Model(inputs, layers.Conv2D(2, 1)(x))
    xs = np.random.default_rng(8).normal(0, 3, (2, 4, 5, 3)).astype(np.float32)
    want = model.predict(xs, verbose=0)
    model.save(tmp_path / "m.keras")
    entry = next(e for e in json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))
                 ["config"]["layers"] if e["name"] == "per_channel")
    assert (entry["class_name"], entry["config"]["scale"], entry["config"]["offset"]) == (
        "Rescaling", [2.0, 0.5, 4.0], 0.0)
    again = catdog.models.load_model(tmp_path / "m.keras")
    assert type(again.get_layer("per_channel")) is ChannelRescaling
    np.testing.assert_array_equal(again.predict(xs, verbose=0), want)
    model.export(tmp_path / "m.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert_close_rel(session.run(None, {"inputs": xs})[0], want, 1e-5, "channel rescaling")
