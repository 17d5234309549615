"""catdog.lite (catdog/lite/): TFLiteConverter writes .tflite flatbuffers that LiteRT's own
interpreter (ai-edge-litert, the test extra) loads and runs; its outputs match catdog's
predict within 1e-5 relative (the ONNX exporter's bound). catdog.lite.Interpreter is LiteRT's
class itself, and says what to install when LiteRT is absent.

The reference for what the converter writes is TensorFlow's converter on the same Keras model
(tf.lite.TFLiteConverter.from_keras_model): one signature "serving_default" with one input
and the output "output_0", activations of shape (1, ...) with shape_signature (-1, ...). The
TFLite operators' semantics are LiteRT's kernels (tensorflow/lite/kernels/*.cc); the numbers
here are checked by running them, not against anything catdog computes for itself."""
import os
import sys

import numpy as np
import pytest

import catdog
from catdog import layers
from conftest import assert_close_rel

try:  # ImportError too, not only ModuleNotFoundError: a wheel whose library fails to load
    import ai_edge_litert.interpreter  # noqa: F401
    import flatbuffers  # noqa: F401
except ImportError as e:
    pytest.skip(f"LiteRT (ai-edge-litert) or flatbuffers cannot be imported ({e}): pip install "
                "catdog[lite]; LiteRT has no wheel for Windows", allow_module_level=True)

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_saving")
REL = 1e-5


def run(content, x, name=None):
    runner = catdog.lite.Interpreter(model_content=content).get_signature_runner("serving_default")
    (inp,) = runner.get_input_details()
    return runner(**{name or inp: np.asarray(x, np.float32)})["output_0"]


def ops_of(content):
    """The operators' names in the file's order, as LiteRT reads them."""
    interp = catdog.lite.Interpreter(model_content=content)
    return [o["op_name"] for o in interp._get_ops_details()]


def _set_weights(model, seed, scale=0.5):
    """Random weights everywhere (BN statistics too: positive variances)."""
    rng = np.random.default_rng(seed)
    for layer in model._leaf_layers():
        values = []
        for wname, w, _ in layer._weights:
            v = rng.normal(0, scale, w.shape)
            if "variance" in wname:
                v = rng.uniform(0.5, 1.5, w.shape)
            values.append(v.astype(np.float32))
        if values:
            layer.set_weights(values)


def tutorial_model(size=32, num_classes=2):
    """The classification tutorial's second model (augmentation, Rescaling, three conv + pool
    blocks, Dropout, Flatten, Dense(128, relu), Dense(num_classes)) at a small image size."""
    data_augmentation = catdog.Sequential([
        layers.RandomFlip("horizontal", input_shape=(size, size, 3)),
        layers.RandomRotation(0.1), layers.RandomZoom(0.1)])
    return catdog.Sequential([
        data_augmentation, layers.Rescaling(1. / 255),
        layers.Conv2D(16, 3, padding='same', activation='relu'), layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding='same', activation='relu'), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding='same', activation='relu'), layers.MaxPooling2D(),
        layers.Dropout(0.2), layers.Flatten(), layers.Dense(128, activation='relu'),
        layers.Dense(num_classes, name="outputs")])


def test_tutorial_model_runs_in_litert():
    catdog.utils.set_random_seed(3)
    model = tutorial_model()
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    want = model.predict(x, verbose=0)
    content = catdog.lite.TFLiteConverter.from_keras_model(model).convert()
    assert isinstance(content, bytes) and content[4:8] == b"TFL3"  # the schema's identifier
    interp = catdog.lite.Interpreter(model_content=content)
    assert type(interp).__module__ == "ai_edge_litert.interpreter"  # LiteRT's own, as it is
    (name,) = interp.get_signature_list()["serving_default"]["inputs"]
    assert interp.get_signature_list() == {
        "serving_default": {"inputs": [name], "outputs": ["output_0"]}}
    runner = interp.get_signature_runner("serving_default")
    d = runner.get_input_details()[name]
    assert list(d["shape"]) == [1, 32, 32, 3] and list(d["shape_signature"]) == [-1, 32, 32, 3]
    assert list(runner.get_output_details()["output_0"]["shape_signature"]) == [-1, 2]
    # any batch: LiteRT resizes the signature's input (3, then 1)
    assert_close_rel(runner(**{name: x})["output_0"], want, REL, "tutorial model, batch 3")
    assert_close_rel(run(content, x[:1]), want[:1], REL, "tutorial model, batch 1")
    # augmentation and Dropout are gone, the activations fused into CONV_2D / FULLY_CONNECTED
    ops = ops_of(content)
    assert ops == ["MUL", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D",
                   "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED"], ops


def test_model_file_and_trained_weights(tmp_path):
    """convert() after training holds the trained weights; model_path= reads the file."""
    catdog.utils.set_random_seed(4)
    model = tutorial_model(size=24)
    model.compile(optimizer="adam",
                  loss=catdog.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 255, (4, 24, 24, 3)).astype(np.float32)
    before = catdog.lite.TFLiteConverter.from_keras_model(model).convert()
    model.train_on_batch(x, np.array([0, 1, 1, 0]))
    path = tmp_path / "model.tflite"
    path.write_bytes(catdog.lite.TFLiteConverter.from_keras_model(model).convert())
    runner = catdog.lite.Interpreter(model_path=str(path)).get_signature_runner()
    (name,) = runner.get_input_details()
    got = runner(**{name: x})["output_0"]
    want = model.predict(x, verbose=0)
    assert_close_rel(got, want, REL, "trained")
    assert np.abs(run(before, x) - want).max() > 1e-4  # the step changed the file's weights


@pytest.mark.parametrize("name", ["lab_a035_32.keras", "cnn_seq.keras"])
def test_saved_models_match_predict(name):
    """The transfer lab's model (MobileNetV2 alpha 0.35: ZeroPadding2D, Conv2D + BN + ReLU6,
    DepthwiseConv2D, Add, GlobalAveragePooling2D, Dense) and a small CNN, from Keras files."""
    model = catdog.models.load_model(os.path.join(FIX, name))
    x = np.load(os.path.join(FIX, "saving_io.npz"))["x/" + name]
    content = catdog.lite.TFLiteConverter.from_keras_model(model).convert()
    assert_close_rel(run(content, x), model.predict(x, verbose=0), REL, name)


def test_mobilenet_v2_lab_model_folds_batchnorm():
    """catdog's MobileNetV2 with random BN statistics, in the lab's functional model: every
    conv -> BatchNormalization [-> ReLU6] block is one operator, as TensorFlow's converter
    writes it (no MUL / ADD / RELU6 left for them)."""
    catdog.utils.set_random_seed(6)
    base = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           include_top=False, weights=None)
    inputs = catdog.Input((32, 32, 3))
    x = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])(inputs)
    x = catdog.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(x))
    model = catdog.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    _set_weights(model, 7, scale=0.3)
    xs = np.random.default_rng(8).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    content = catdog.lite.TFLiteConverter.from_keras_model(model).convert()
    want = model.predict(xs, verbose=0)
    assert_close_rel(run(content, xs), want, REL, "lab model")
    ops = ops_of(content)
    n_bn = sum(type(l) is layers.BatchNormalization for l in model._leaf_layers())
    n_conv = sum(type(l) in (layers.Conv2D, layers.DepthwiseConv2D) for l in model._leaf_layers())
    assert n_bn == n_conv > 30
    assert ops.count("CONV_2D") + ops.count("DEPTHWISE_CONV_2D") == n_conv
    assert ops.count("MUL") == 1 and ops.count("ADD") == 1 + 10  # preprocess_input; the 10 Adds
    assert "RELU6" not in ops and {"PAD", "MEAN", "LOGISTIC", "FULLY_CONNECTED"} <= set(ops)


def test_layers_and_activations_one_by_one():
    """Each supported form on its own path: activation= as fused or as its own operator,
    strides, dilation, valid padding, depth multiplier, AveragePooling2D, Activation, ReLU,
    BN not after a conv, GAP keepdims, tensor arithmetic, Add of three."""
    catdog.utils.set_random_seed(9)
    inp = catdog.Input((12, 12, 4))
    a = layers.Conv2D(6, 3, strides=2, padding="same", activation="tanh")(inp)
    b = layers.Conv2D(6, 3, padding="valid", dilation_rate=2, activation="sigmoid")(inp)
    b = layers.MaxPooling2D(pool_size=3, strides=1, padding="same")(b)
    b = layers.AveragePooling2D(pool_size=3, strides=2, padding="same")(
        layers.ZeroPadding2D(((1, 2), (2, 1)))(b))
    c = layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                               activation="relu6")(inp)
    c = layers.Conv2D(6, 1, use_bias=False)(c)
    c = layers.BatchNormalization()(layers.ReLU()(c))
    s = layers.Add()([a, layers.Activation("hard_swish")(b), c])
    s = (s - layers.ReLU(6.0)(a)) * 0.5 + 1.0
    g = layers.GlobalAveragePooling2D(keepdims=True)(s)
    g = layers.Flatten()(layers.Activation("softmax")(g))
    out = layers.Dense(3, activation="softmax")(layers.Dense(8, activation="sigmoid")(g))
    model = catdog.Model(inp, out)
    _set_weights(model, 10)
    x = np.random.default_rng(11).normal(0, 1, (3, 12, 12, 4)).astype(np.float32)
    content = catdog.lite.TFLiteConverter.from_keras_model(model).convert()
    assert_close_rel(run(content, x), model.predict(x, verbose=0), REL, "one by one")


def test_issue22_layers():
    """SeparableConv2D (+ BN folded), swish, a squeeze-and-excite gate ((C,) and (1, 1, C)),
    Concatenate on H and on C, Subtract, GlobalMaxPooling2D, x * y."""
    catdog.utils.set_random_seed(12)
    inp = catdog.Input((10, 10, 3))
    a = layers.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, use_bias=False)(inp)
    a = layers.Activation("swish")(layers.BatchNormalization()(a))
    b = layers.SeparableConv2D(8, 3, padding="same", activation="relu")(inp)
    gate = layers.Dense(8, activation="sigmoid")(layers.GlobalAveragePooling2D()(a))
    a = layers.Multiply()([a, gate])  # (C,) gate
    gate2 = layers.GlobalMaxPooling2D(keepdims=True)(b)
    b = layers.Multiply()([gate2, b])  # (1, 1, C) gate, first
    c = layers.Concatenate(axis=1)([a, b])  # (20, 10, 8)
    d = layers.Subtract()([a, b]) * b
    d = layers.Concatenate()([d, layers.Conv2D(4, 1, activation="swish")(d)])  # (10, 10, 12)
    out = layers.Dense(2)(layers.concatenate([layers.GlobalMaxPooling2D()(c),
                                              layers.GlobalAveragePooling2D()(d)]))
    model = catdog.Model(inp, out)
    _set_weights(model, 13)
    x = np.random.default_rng(14).normal(0, 1, (2, 10, 10, 3)).astype(np.float32)
    content = catdog.lite.TFLiteConverter.from_keras_model(model).convert()
    assert_close_rel(run(content, x), model.predict(x, verbose=0), REL, "issue 22's layers")
    ops = ops_of(content)
    assert ops.count("DEPTHWISE_CONV_2D") == 2 and ops.count("CONCATENATION") == 3
    assert ops.count("REDUCE_MAX") == 2 and "SUB" in ops and ops.count("LOGISTIC") == 3


@pytest.mark.parametrize("make, what", [
    (lambda: layers.Conv2D(4, 3, groups=2), "groups=2"),
    (lambda: layers.ReLU(max_value=3.0), "max_value=3.0"),
    (lambda: layers.Activation("gelu"), "activation 'gelu'"),
    (lambda: layers.Conv2D(4, 3, activation="elu"), "activation 'elu'"),
    (lambda: layers.Resizing(4, 4), "no TFLite form"),
])
def test_unsupported_layers_are_refused_by_name(make, what):
    inp = catdog.Input((8, 8, 4))
    layer = make()
    model = catdog.Model(inp, layer(inp))
    with pytest.raises(ValueError, match=rf"layer '{layer.name}' \({type(layer).__name__}\).*"
                                         rf"{what}"):
        catdog.lite.TFLiteConverter.from_keras_model(model).convert()


def test_converter_refuses_quantization_and_non_models():
    conv = catdog.lite.TFLiteConverter.from_keras_model(tutorial_model(size=16))
    conv.optimizations = ["DEFAULT"]
    with pytest.raises(ValueError, match="float32"):
        conv.convert()
    with pytest.raises(TypeError, match="catdog model"):
        catdog.lite.TFLiteConverter.from_keras_model(layers.Dense(2))


def test_without_litert_interpreter_says_what_to_install(monkeypatch):
    """No LiteRT: the converter still works (flatbuffers only); Interpreter is an ImportError
    naming the package (never a catdog stand-in)."""
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    content = catdog.lite.TFLiteConverter.from_keras_model(tutorial_model(size=16)).convert()
    assert content[4:8] == b"TFL3"
    with pytest.raises(ImportError, match=r"ai-edge-litert.*pip install catdog\[lite\]|"
                                          r"pip install catdog\[lite\].*ai-edge-litert"):
        catdog.lite.Interpreter(model_content=content)
    with pytest.raises(ImportError, match="ai-edge-litert"):
        from catdog.lite import Interpreter  # noqa: F401


def test_without_flatbuffers_converter_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "flatbuffers", None)
    with pytest.raises(ImportError, match=r"flatbuffers.*catdog\[lite\]"):
        catdog.lite.TFLiteConverter.from_keras_model(tutorial_model(size=16)).convert()
