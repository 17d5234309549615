"""model.export("x.onnx", format="onnx") (catdog/saving/onnx_export.py), run by ONNX Runtime
and compared with catdog's predict (1e-5 relative, the issue's bound).

Keras's own exporter is keras/src/export/onnx.py (`export_onnx`, via tf2onnx for the TF
backend); as there, the file is the inference graph with a dynamic batch axis. catdog's
input stays NHWC, as its predict takes it."""
import os
import sys

import numpy as np
import pytest

import catdog
from conftest import SHARED_WEIGHTS, assert_close_rel, needs_shared_weights

onnx = pytest.importorskip("onnx", reason="pip install catdog[onnx] (the test extra has it)")
ort = pytest.importorskip("onnxruntime", reason="the test extra installs onnxruntime")

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_saving")
IO = dict(np.load(os.path.join(FIX, "saving_io.npz")))
REL = 1e-5


def run(path, x):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {"inputs": np.asarray(x, np.float32)})[0]


@pytest.mark.parametrize("name", ["lab_a035_32.keras", "mnv2_top_a035_32.keras", "cnn_seq.keras"])
def test_onnx_runtime_matches_predict(name, tmp_path):
    model = catdog.models.load_model(os.path.join(FIX, name))
    path = tmp_path / "m.onnx"
    model.export(path, format="onnx")
    x = IO["x/" + name]
    want = model.predict(x)
    assert_close_rel(run(path, x), want, REL, name)
    assert_close_rel(run(path, x[:1]), want[:1], REL, name + " batch 1")  # dynamic batch
    proto = onnx.load(str(path))
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [32, 32, 3]
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Dropout", "RandomUniform", "RandomNormal"}
    if name.startswith("lab"):  # augmentation and Dropout are identity; BN stays BN
        assert "BatchNormalization" in ops and "Clip" in ops and "Pad" in ops
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_catdog_trained_lab_model(tmp_path):
    """A model catdog built and trained (one step), Sequential augmentation included."""
    from catdog import layers

    catdog.random.set_seed(9)
    base = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           include_top=False, weights=None)
    inputs = catdog.Input((32, 32, 3))
    x = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])(inputs)
    x = catdog.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(x))
    model = catdog.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(1)
    xs = rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    model.train_on_batch(xs, np.array([0, 1, 1, 0]))
    model.export(tmp_path / "lab.onnx")
    assert_close_rel(run(tmp_path / "lab.onnx", xs), model.predict(xs), REL, "trained lab")


@needs_shared_weights
def test_imagenet_mobilenet_v2_at_160(tmp_path):
    base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False,
                                           weights=str(SHARED_WEIGHTS))
    x = np.random.default_rng(2).uniform(-1, 1, (2, 160, 160, 3)).astype(np.float32)
    base.export(tmp_path / "base.onnx")
    got = run(tmp_path / "base.onnx", x)
    assert got.shape == (2, 5, 5, 1280)
    assert_close_rel(got, base.predict(x), REL, "ImageNet MobileNetV2 160")


# ---- issue 22's layers ---------------------------------------------------------------------
# Keras 3 defines each activation in keras/src/activations/activations.py (gelu's default is
# approximate=False, the erf form); catdog runs them in csrc/nn/activation.c.
ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "softmax", "swish", "silu", "hard_sigmoid",
               "hard_swish", "hard_silu", "gelu", "elu", "selu", "softplus", "linear"]


def _set_weights(model, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    for layer in model._leaf_layers():
        values = [rng.normal(0, scale, w.shape) for _, w, _ in layer._weights]
        if values:
            layer.set_weights(values)


def _check(model, tmp_path, x, what):
    path = tmp_path / "m.onnx"
    model.export(path, format="onnx")
    want = model.predict(x, verbose=0)
    assert np.abs(want).max() > 1e-3, what  # not a vanishing signal
    assert_close_rel(run(path, x), want, REL, what)
    assert_close_rel(run(path, x[:1]), want[:1], REL, what + " batch 1")
    return onnx.load(str(path))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_each_activation_on_each_layer_kind(act, tmp_path):
    """activation= on Conv2D, DepthwiseConv2D, SeparableConv2D and Dense, and the Activation
    layer, on image tensors (softmax over the channels) and on vectors."""
    from catdog import layers

    inputs = catdog.Input((7, 7, 3))
    x = layers.Conv2D(6, 3, padding="same", activation=act)(inputs)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation=act)(x)
    x = layers.SeparableConv2D(5, 3, padding="same", activation=act)(x)
    image = layers.Activation(act)(x)
    flat = layers.Activation(act)(layers.Dense(4, activation=act)(layers.Flatten()(image)))
    rng = np.random.default_rng(3)
    xs = rng.normal(0, 1.5, (3, 7, 7, 3)).astype(np.float32)
    for model in (catdog.Model(inputs, image), catdog.Model(inputs, flat)):
        _set_weights(model, 4)
        _check(model, tmp_path, xs, f"{act} -> {model.output_shape}")


def test_keras_file_with_issue_22_layers_exports():
    """Keras's own file (tests/fixtures/make_layer_saving_fixtures.py): Flatten after a conv
    stack (NHWC order), Reshape, SeparableConv2D, a squeeze-and-excite Multiply, GAP and GMP
    with keepdims, Subtract / Maximum / Average, Dropout(noise_shape): ONNX Runtime matches
    Keras's own predictions too."""
    import tempfile
    from pathlib import Path

    io = np.load(os.path.join(FIX, "layers_io.npz"))
    model = catdog.models.load_model(os.path.join(FIX, "layers_cnn.keras"))
    with tempfile.TemporaryDirectory() as tmp:
        proto = _check(model, Path(tmp), io["x"], "layers_cnn.keras")
        assert_close_rel(run(Path(tmp) / "m.onnx", io["x"]), io["pred"], REL, "vs Keras")
    ops = {n.op_type for n in proto.graph.node}
    assert {"GlobalMaxPool", "Max", "Sub", "Mul", "Reshape", "Flatten", "HardSigmoid"} <= ops
    assert "Dropout" not in ops


def test_arithmetic_merges_reshape_and_gates(tmp_path):
    """Tensor arithmetic (catdog/layers/operations.py: x + 3.0, c - x, x / c, -x, x * y,
    x - y), MobileNetV3's hard-sigmoid gate, Minimum, a (C,) vector gating an image,
    Reshape vector -> image and image -> image, GlobalMaxPooling2D, AveragePooling2D 'same'."""
    from catdog import layers

    inputs = catdog.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    gate = layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)  # MobileNetV3's hard_sigmoid
    x = x * gate - x / 4.0
    x = 2.0 - (-x)
    v = layers.Dense(8, activation="sigmoid")(layers.GlobalAveragePooling2D()(x))
    x = layers.Multiply()([x, v])  # (8,) per channel of (8, 8, 8)
    y = layers.Conv2D(8, 1)(x)
    x = layers.Minimum()([x, y]) + layers.Average()([x, y])
    x = layers.AveragePooling2D(3, strides=2, padding="same")(x)
    x = layers.Reshape((2, 8, 8))(x)  # (4, 4, 8) -> (2, 8, 8), NHWC order
    m = layers.GlobalMaxPooling2D()(x)
    r = layers.Reshape((2, 2, 2))(layers.Dense(8)(m))
    r = layers.Flatten()(layers.Conv2D(3, 1)(r))
    model = catdog.Model(inputs, layers.Dense(2)(layers.Subtract()([layers.Dense(12)(r),
                                                                      layers.Dense(12)(m)])))
    _set_weights(model, 5)
    xs = np.random.default_rng(6).normal(0, 1, (3, 8, 8, 3)).astype(np.float32)
    proto = _check(model, tmp_path, xs, "arithmetic")
    ops = [n.op_type for n in proto.graph.node]
    assert {"Min", "Unsqueeze", "GlobalMaxPool", "Reshape", "Clip"} <= set(ops)


def test_concatenate_and_merges_of_three(tmp_path):
    """Concatenate along H, W and C of images and of vectors (NHWC axes 1, 2, -1 become NCHW's
    2, 3, 1), and Add / Maximum / Minimum / Average of three inputs (Keras folds left to
    right, keras/src/layers/merging/)."""
    from catdog import layers

    inputs = catdog.Input((6, 6, 3))
    a = layers.Conv2D(4, 1)(inputs)
    b = layers.Conv2D(4, 3, padding="same")(inputs)
    c = layers.Conv2D(4, 1, activation="tanh")(inputs)
    merged = [m([a, b, c]) for m in (layers.Add(), layers.Maximum(), layers.Minimum(),
                                     layers.Average())]
    x = layers.Concatenate()(merged)  # (6, 6, 16)
    h = layers.Concatenate(axis=1)([a, b])  # (12, 6, 4)
    w = layers.Concatenate(axis=-2)([b, c])  # (6, 12, 4)
    v = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.Flatten()(h),
                              layers.Flatten()(w)])
    xs = np.random.default_rng(7).normal(0, 1, (3, 6, 6, 3)).astype(np.float32)
    for out in (x, h, w, layers.Dense(5)(v)):
        model = catdog.Model(inputs, out)
        _set_weights(model, 8)
        proto = _check(model, tmp_path, xs, f"concatenate -> {model.output_shape}")
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Concat") == 4 and {"Sum", "Max", "Min", "Mean"} <= set(ops)
    keras_file = os.path.join(FIX, "merge_nary.keras")  # make_ops_saving_fixtures.py
    io = np.load(os.path.join(FIX, "ops_io.npz"))
    model = catdog.models.load_model(keras_file)
    _check(model, tmp_path, io["x/merge_nary.keras"], "merge_nary.keras")
    assert_close_rel(run(tmp_path / "m.onnx", io["x/merge_nary.keras"]),
                     io["pred/merge_nary.keras"], REL, "merge_nary.keras vs Keras")


# ---- the layers of branch i22-layers (dilation, groups, multipliers, BN, Normalization,
# Resizing): Keras's definitions in keras/src/layers/convolutional/, normalization/ and
# preprocessing/ (Resizing: tf.image.resize, keras/src/backend/tensorflow/image.py)
def test_keras_file_with_the_new_conv_bn_and_preprocessing_layers():
    """tests/fixtures/make_layers_fixtures.py's layers_model.keras: RandomContrast and
    RandomBrightness (left out), Resizing with crop, an adapted Normalization, a dilated
    Conv2D, BN without gamma and without beta, a grouped Conv2D, a depthwise multiplier 2."""
    import tempfile
    from pathlib import Path

    io = np.load(os.path.join(os.path.dirname(FIX), "keras", "layers_files.npz"))
    model = catdog.models.load_model(os.path.join(FIX, "layers_model.keras"))
    with tempfile.TemporaryDirectory() as tmp:
        proto = _check(model, Path(tmp), io["x"], "layers_model.keras")
        assert_close_rel(run(Path(tmp) / "m.onnx", io["x"]), io["pred"], REL, "vs Keras")
    ops = [n.op_type for n in proto.graph.node]
    assert {"Resize", "Slice", "Div"} <= set(ops) and ops.count("BatchNormalization") == 2
    assert any(a.name == "dilations" and list(a.ints) == [2, 2]
               for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute)


def test_dilation_groups_multipliers_and_batchnorm_flags(tmp_path):
    from catdog import layers

    inputs = catdog.Input((13, 11, 4))
    x = layers.Conv2D(6, 3, padding="same", dilation_rate=2, activation="relu")(inputs)
    x = layers.Conv2D(6, (3, 2), groups=3, dilation_rate=(1, 2))(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, dilation_rate=2)(x)
    x = layers.BatchNormalization(center=False)(x)
    x = layers.SeparableConv2D(5, 3, padding="same", depth_multiplier=3, dilation_rate=2,
                               activation="gelu")(x)
    x = layers.BatchNormalization(scale=False)(x)
    x = layers.DepthwiseConv2D(5, strides=2, padding="same", depth_multiplier=2)(x)
    model = catdog.Model(inputs, layers.BatchNormalization(center=False, scale=False)(x))
    _set_weights(model, 11)
    for layer in model.layers:  # positive moving variances
        if isinstance(layer, layers.BatchNormalization):
            w = layer.get_weights()
            w[-1] = np.abs(w[-1]) + 0.5
            layer.set_weights(w)
    xs = np.random.default_rng(12).normal(0, 1, (3, 13, 11, 4)).astype(np.float32)
    proto = _check(model, tmp_path, xs, "dilation / groups / multipliers")
    groups = sorted(a.i for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute
                    if a.name == "group")
    # Conv2D 1, grouped 3, depthwise on 6 and 12 channels and (multiplier 2) on 5
    assert groups == [1, 3, 5, 6, 12], groups


@pytest.mark.parametrize("invert", [False, True])
def test_normalization(tmp_path, invert):
    """Given mean / variance (constants, a zero variance clamped to 1e-7) on an image, axis=None
    (one mean and variance), and adapted (weights) on a vector."""
    from catdog import layers

    inputs = catdog.Input((5, 5, 3))
    x = layers.Normalization(mean=[1.0, -2.0, 0.5], variance=[4.0, 0.25, 0.0], invert=invert)(inputs)
    x = layers.Normalization(axis=None, mean=0.5, variance=2.0, invert=invert)(x)
    v = layers.Dense(4)(layers.Flatten()(layers.Conv2D(2, 1)(x)))
    norm = layers.Normalization(invert=invert)
    norm.adapt(np.random.default_rng(13).normal(3, 2, (50, 4)))
    model = catdog.Model(inputs, layers.Dense(2)(norm(v)))
    _set_weights(model, 14)
    norm.adapt(np.random.default_rng(13).normal(3, 2, (50, 4)))  # _set_weights drew over it
    xs = np.random.default_rng(15).normal(0, 0.1, (3, 5, 5, 3)).astype(np.float32)
    _check(model, tmp_path, xs, f"normalization invert={invert}")


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("size,aspect", [((7, 5), None), ((20, 30), None), ((9, 9), "crop"),
                                         ((6, 16), "crop"), ((9, 9), "pad"), ((16, 6), "pad")])
def test_resizing(tmp_path, interpolation, size, aspect):
    """Down and up, either aspect (crop_to_aspect_ratio, pad_to_aspect_ratio with a fill
    value), with RandomContrast / RandomBrightness before it (augmentation: left out)."""
    from catdog import layers

    inputs = catdog.Input((12, 10, 3))
    x = layers.RandomBrightness(0.1)(layers.RandomContrast(0.2)(inputs))
    x = layers.Resizing(*size, interpolation=interpolation, crop_to_aspect_ratio=aspect == "crop",
                        pad_to_aspect_ratio=aspect == "pad", fill_value=2.5)(x)
    model = catdog.Model(inputs, x)
    xs = np.random.default_rng(16).normal(0, 1, (3, 12, 10, 3)).astype(np.float32)
    proto = _check(model, tmp_path, xs, f"resizing {interpolation} {size} {aspect}")
    ops = [n.op_type for n in proto.graph.node]
    assert "Resize" in ops and ("Pad" in ops) == (aspect == "pad")
    assert ops.count("Slice") == (2 if aspect == "crop" else 1)  # the crop; N, C of the shape


def test_without_onnx_says_what_to_install(tmp_path, monkeypatch):
    model = catdog.models.load_model(os.path.join(FIX, "cnn_seq.keras"))
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(ImportError, match=r"pip install catdog\[onnx\]"):
        model.export(tmp_path / "m.onnx", format="onnx")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="format='onnx'"):
        model.export(tmp_path / "m", format="tf_saved_model")
