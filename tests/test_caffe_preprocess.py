"""ResNet50's and VGG16's "caffe" preprocess_input inside a model, as Keras 3 records it
(keras/src/applications/imagenet_utils.py, _preprocess_tensor_input, channels_last):
`ops.stack([x[..., i] for i in (2, 1, 0)], axis=-1)` (a GetItem per channel, a Stack) then
`x += mean_tensor` (an Add whose second argument is the constant (1, 1, 1, 3) tensor
-(103.939, 116.779, 123.68)). Operations, not layers: model.layers does not list them. The
engine runs them as per-channel maps (csrc/nn/channel_affine.c).

Fixture: tests/fixtures/make_ops_saving_fixtures.py's caffe_free.keras (Keras 3.15, a free
input size) and its predictions in ops_io.npz."""
import json
import os
import zipfile

import numpy as np
import pytest

import catdog
from catdog import layers
from catdog.applications import resnet50, vgg16
from catdog.saving.serialization import ConfigError
from conftest import assert_close_rel

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_saving")
IO = np.load(os.path.join(FIX, "ops_io.npz"))
NAME = "caffe_free.keras"


def config_of(path):
    return json.loads(zipfile.ZipFile(path).read("config.json"))


def op_entries(config):
    """The ops' (class_name, name, config without name, inbound args with tensors as their
    producer's name) in file order."""
    def arg(a):
        if isinstance(a, list):
            return [arg(v) for v in a]
        if isinstance(a, dict) and a.get("class_name") == "__keras_tensor__":
            return a["config"]["keras_history"][0]
        return a
    return [(e["class_name"], e["name"], {k: v for k, v in e["config"].items() if k != "name"},
             arg(e["inbound_nodes"][0]["args"]))
            for e in config["config"]["layers"] if e["module"] == "keras.src.ops.numpy"]


def images(shape=(2, 10, 12, 3), seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


@pytest.mark.parametrize("module", [resnet50, vgg16])
def test_in_a_model_it_is_the_array_function_bit_for_bit(module):
    inp = catdog.Input((None, None, 3))
    out = module.preprocess_input(inp)
    model = catdog.Model(inp, out)
    assert [layer.name for layer in model.layers] == [inp.layer.name]  # operations only
    assert model.count_params() == 0
    x = images()
    np.testing.assert_array_equal(model.predict(x), module.preprocess_input(x.copy()))


def test_keras_file_loads_and_predicts_as_keras():
    path = os.path.join(FIX, NAME)
    model = catdog.models.load_model(path)
    assert_close_rel(model.predict(IO["x/" + NAME]), IO["pred/" + NAME], 1e-5, NAME)
    keras_cfg = config_of(path)
    assert [layer.name for layer in model.layers] == [
        e["name"] for e in keras_cfg["config"]["layers"] if e["module"] != "keras.src.ops.numpy"]
    assert [c for c, *_ in op_entries(keras_cfg)] == ["GetItem"] * 3 + ["Stack", "Add"]


def test_catdog_writes_the_ops_as_keras_does(tmp_path):
    """A catdog-built model with the caffe preprocessing saves the same op entries (names,
    configs, arguments: the ellipsis key, the tensors, the mean as a `__tensor__`) as
    Keras's file, and loads back to the same predictions."""
    keras_cfg = config_of(os.path.join(FIX, NAME))
    catdog.layers.core.reset_name_counters()
    inp = catdog.Input((None, None, 3), name=keras_cfg["config"]["layers"][0]["name"])
    x = resnet50.preprocess_input(inp)
    x = layers.Conv2D(4, 3, padding="same")(x)
    model = catdog.Model(inp, layers.Dense(1)(layers.GlobalAveragePooling2D()(x)))
    path = str(tmp_path / "caffe.keras")
    model.save(path)
    # names too, but the Add's: the fixture script's earlier models took add .. add_11
    ours, theirs = op_entries(config_of(path)), op_entries(keras_cfg)
    assert ours[:4] == theirs[:4]
    assert ours[4][0] == theirs[4][0] == "Add" and ours[4][2:] == theirs[4][2:]
    back = catdog.models.load_model(path)
    x = images()
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_gradients_pass_through_the_channel_maps():
    """Conv2D(3) -> caffe -> Conv2D -> GAP -> Dense: the first conv's bias gradient, through
    the reordering and the constant, matches finite differences of the loss (float64 sums
    of the engine's float32 losses)."""
    rng = np.random.default_rng(3)
    inp = catdog.Input((6, 6, 3))
    x = layers.Conv2D(3, 3, padding="same", name="c1")(inp)
    x = resnet50.preprocess_input(x)
    x = layers.Conv2D(2, 3, padding="same", name="c2")(x)
    model = catdog.Model(inp, layers.Dense(1, name="d")(layers.GlobalAveragePooling2D()(x)))
    model.get_layer("c1").set_weights([rng.normal(0, 0.3, (3, 3, 3, 3)).astype(np.float32),
                                       np.array([1.0, -2.0, 0.5], np.float32)])
    x = rng.uniform(0, 2, (2, 6, 6, 3)).astype(np.float32)
    y = np.array([[0.0], [1.0]], np.float32)
    grad = model.gradients(x, y)["c1/bias"]
    model.compile(optimizer="sgd", loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    kernel, bias = model.get_layer("c1").get_weights()
    eps = 1e-2
    for k in range(3):
        losses = []
        for sign in (1, -1):
            b = bias.copy()
            b[k] += sign * eps
            model.get_layer("c1").set_weights([kernel, b])
            losses.append(model.evaluate(x, y, verbose=0))
        fd = (losses[0] - losses[1]) / (2 * eps)
        assert abs(fd - grad[k]) <= 2e-3 * max(1.0, abs(grad[k])), (k, fd, grad[k])


def test_onnx_export_runs_the_channel_maps(tmp_path):
    pytest.importorskip("onnx", reason="pip install catdog[onnx] (the test extra has it)")
    ort = pytest.importorskip("onnxruntime", reason="the test extra installs onnxruntime")
    model = catdog.models.load_model(os.path.join(FIX, NAME))
    path = str(tmp_path / "caffe.onnx")
    model.export(path, format="onnx")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = IO["x/" + NAME]
    assert_close_rel(sess.run(None, {sess.get_inputs()[0].name: x})[0], model.predict(x), 1e-5,
                     "onnx")


def test_other_slices_and_stacks_are_refused_clearly():
    inp = catdog.Input((8, 8, 3))
    with pytest.raises(NotImplementedError, match=r"x\[\.\.\., i\]"):
        inp[0]
    with pytest.raises(NotImplementedError, match="every channel of an image once"):
        catdog.ops.stack([inp[..., 0], inp[..., 0], inp[..., 1]], axis=-1)
    with pytest.raises(NotImplementedError, match="along the last axis"):
        catdog.ops.stack([inp[..., i] for i in (2, 1, 0)], axis=0)
    with pytest.raises(NotImplementedError, match="one value per channel"):
        inp + np.zeros((2, 3), np.float32)
    with pytest.raises(NotImplementedError, match=r"only x \+ t, t \+ x and x - t"):
        np.zeros(3, np.float32) - inp
    np.testing.assert_array_equal(catdog.ops.stack([np.zeros(2), np.ones(2)]),
                                  [[0, 0], [1, 1]])  # arrays: numpy's stack


@pytest.mark.parametrize("mutate, match", [
    (lambda e: e["inbound_nodes"][0]["args"].__setitem__(1, [{"class_name": "__ellipsis__",
                                                              "config": {}}, "x"]),
     "one channel"),
    (lambda e: e["inbound_nodes"][0]["args"].__setitem__(1, [0, 1]), "one channel"),
])
def test_hostile_get_item_keys_are_refused(tmp_path, mutate, match):
    src = zipfile.ZipFile(os.path.join(FIX, NAME))
    cfg = json.loads(src.read("config.json"))
    entry = [e for e in cfg["config"]["layers"] if e["class_name"] == "GetItem"][0]
    mutate(entry)
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as out:
        for item in src.namelist():
            out.writestr(item, json.dumps(cfg) if item == "config.json" else src.read(item))
    with pytest.raises(ConfigError, match=match):
        catdog.models.load_model(str(path))


def test_a_huge_constant_tensor_is_refused(tmp_path):
    src = zipfile.ZipFile(os.path.join(FIX, NAME))
    cfg = json.loads(src.read("config.json"))
    add = [e for e in cfg["config"]["layers"] if e["class_name"] == "Add"][0]
    add["inbound_nodes"][0]["args"][1]["config"]["value"] = [[[[0.0] * 1000]]]
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as out:
        for item in src.namelist():
            out.writestr(item, json.dumps(cfg) if item == "config.json" else src.read(item))
    with pytest.raises(ConfigError, match="at most 64 finite values"):
        catdog.models.load_model(str(path))


def test_rescaling_with_a_scale_per_channel(tmp_path):
    """Keras's Rescaling takes a list of scales, broadcast over the last axis
    (keras/src/layers/preprocessing/rescaling.py): the same channel map, x * scale + offset
    rounded as TF's mul then add, bit for bit NumPy's float32; .keras round trip; the input
    gradient is dy * scale."""
    inp = catdog.Input((5, 4, 3))
    r = layers.Rescaling([0.5, -2.0, 1.0 / 3.0], offset=1.25)
    assert isinstance(r, catdog.layers.preprocessing.ChannelRescaling)
    model = catdog.Model(inp, r(inp))
    x = images((2, 5, 4, 3))
    want = x * np.array([0.5, -2.0, 1.0 / 3.0], np.float32) + np.float32(1.25)
    np.testing.assert_array_equal(model.predict(x), want)
    np.testing.assert_array_equal(r(x), want)
    path = str(tmp_path / "r.keras")
    model.save(path)
    np.testing.assert_array_equal(catdog.models.load_model(path).predict(x), want)
    conv = layers.Conv2D(3, 1, use_bias=False, name="c")
    m2 = catdog.Model(inp, layers.GlobalAveragePooling2D()(layers.Rescaling([0.5, -2.0, 4.0])(
        conv(inp))))
    conv.set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3)])
    g = m2.gradients(x, output_gradient=np.ones((2, 3), np.float32))["c/kernel"]
    # d sum(mean(s_k * (x W)_k)) / dW[j, k] = s_k * mean over pixels of x_j, summed over images
    expect = x.mean(axis=(1, 2)).sum(0)[:, None] * np.array([0.5, -2.0, 4.0], np.float32)
    np.testing.assert_allclose(g.reshape(3, 3), expect, rtol=1e-5)
    with pytest.raises(ValueError, match="3 scales for 4 channels"):
        layers.Rescaling([1.0, 2.0, 3.0])(catdog.Input((4, 4, 4)))
