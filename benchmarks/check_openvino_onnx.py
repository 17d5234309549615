#!/usr/bin/env python3
"""OpenVINO reads catdog's ONNX export (issue 20: "OpenVINO reads it too"): the lab's model at
alpha 0.35, 96x96, each other application (ResNet50, VGG16, MobileNetV3Small / Large,
EfficientNetB0 at 32x32), and a model of issue 22's layers (every activation, SeparableConv2D,
Flatten, Reshape, the merging layers, a Multiply gate, global max pooling, tensor arithmetic
as MobileNetV3 writes it), seeded random weights, exported with
`model.export(format="onnx")`, then read and run by OpenVINO's CPU plugin in fp32 from its
own venv (`bash benchmarks/setup.sh ov`), on a dynamic batch of NHWC images; prints the
largest relative difference to catdog's predict and fails above 1e-5. OpenVINO is never a
catdog dependency.

    .venv/bin/python benchmarks/check_openvino_onnx.py
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

import catdog
from catdog import layers

HERE = os.path.dirname(os.path.abspath(__file__))
OV_PYTHON = os.environ.get("OV_PYTHON", os.path.join(HERE, ".venv-ov", "bin", "python"))
RUN_OV = """
import sys, numpy as np, openvino as ov
core = ov.Core()
model = core.read_model(sys.argv[1])
compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
np.save(sys.argv[3], compiled(np.load(sys.argv[2]))[0])
print("OpenVINO", ov.__version__, "input", model.inputs[0].get_partial_shape())
"""


ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "softmax", "silu", "hard_sigmoid",
               "hard_silu", "gelu", "elu", "selu", "softplus", "linear"]


def lab_model():
    catdog.random.set_seed(1)
    base = catdog.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35,
                                           include_top=False, weights=None)
    base.trainable = False
    inputs = catdog.Input((96, 96, 3))
    x = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])(inputs)
    x = base(catdog.applications.mobilenet_v2.preprocess_input(x), training=False)
    x = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(x))
    return catdog.Model(inputs, layers.Dense(1)(x)), (96, 96, 3), 255.0


def layers_model():
    """Issue 22's layers: Resizing (crop, nearest), Normalization, dilated / grouped Conv2D,
    BN without center, a depth multiplier; each activation on its own branch of Conv2D
    (activation=) then Activation, summed; SeparableConv2D, a hard-sigmoid gate by arithmetic,
    Multiply, Subtract / Maximum / Minimum / Average, Flatten, Reshape, GlobalMaxPooling2D,
    Dense."""
    catdog.random.set_seed(2)
    inputs = catdog.Input((24, 24, 3))
    x = layers.Resizing(30, 20, crop_to_aspect_ratio=True)(layers.RandomContrast(0.2)(inputs))
    x = layers.Normalization(mean=[0.5, 0.4, 0.6], variance=[0.1, 0.2, 0.3])(x)
    x = layers.Conv2D(6, 3, padding="same", dilation_rate=2)(x)
    x = layers.Conv2D(8, 3, groups=2, activation="relu")(x)
    x = layers.BatchNormalization(center=False)(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = layers.Resizing(24, 24, interpolation="nearest")(x)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    branches = [layers.Activation(a)(layers.Conv2D(8, 1, activation=a)(x)) for a in ACTIVATIONS]
    x = branches[0]
    for b in branches[1:]:
        x = layers.Add()([x, b])
    x = layers.SeparableConv2D(8, 3, padding="same", activation="hard_swish")(x)
    gate = layers.ReLU(6.0)(layers.Conv2D(8, 1)(layers.GlobalAveragePooling2D(keepdims=True)(x))
                            + 3.0) * (1.0 / 6.0)
    x = layers.Multiply()([x, gate])
    y = layers.DepthwiseConv2D(3, padding="same", activation="gelu")(x)
    x = layers.Average()([layers.Maximum()([x, y]), layers.Minimum()([x, 2.0 - y])])
    x = layers.Subtract()([x, -y / 4.0])
    m = layers.GlobalMaxPooling2D()(x)
    r = layers.Flatten()(layers.Reshape((3, 12, 8))(layers.MaxPooling2D()(x)))
    out = layers.Dense(4, activation="softmax")(
        layers.Add()([layers.Dense(16, activation="selu")(r), layers.Dense(16)(m)]))
    return catdog.Model(inputs, out), (24, 24, 3), 1.0


def application(builder, **kwargs):
    """One of catdog.applications at 32x32 with seeded random weights (BN statistics spread)."""
    catdog.random.set_seed(3)
    model = getattr(catdog.applications, builder)(input_shape=(32, 32, 3), weights=None, **kwargs)
    rng = np.random.default_rng(4)
    for layer in model._leaf_layers():
        values = [rng.uniform(0.5, 1.5, w.shape) if n in ("gamma", "moving_variance", "variance")
                  else rng.normal(0, 0.1, w.shape) if n in ("beta", "moving_mean", "bias", "mean")
                  else np.float32(10) if n == "count"
                  else rng.normal(0, 1.15 / np.sqrt(w.shape[0] * w.shape[1] if n == "depthwise_kernel"
                                                    else max(int(np.prod(w.shape[:-1])), 1)), w.shape)
                  for n, w, _ in layer._weights]
        if values:
            layer.set_weights(values)
    return model, (32, 32, 3), 255.0


def main():
    if not os.path.exists(OV_PYTHON):
        sys.exit(f"no OpenVINO venv at {OV_PYTHON}: run `bash benchmarks/setup.sh ov` first")
    worst = 0.0
    models = [("lab", lab_model()), ("layers", layers_model()),
              ("resnet50", application("ResNet50", include_top=False, pooling="avg")),
              ("vgg16", application("VGG16", include_top=False, pooling="max")),
              ("mobilenet_v3_small", application("MobileNetV3Small", classes=5)),
              ("mobilenet_v3_large", application("MobileNetV3Large", alpha=0.75, classes=5)),
              ("efficientnet_b0", application("EfficientNetB0", classes=5))]
    for name, (model, shape, scale) in models:
        worst = max(worst, check(name, model, shape, scale))
    if worst > 1e-5:
        sys.exit(f"FAIL: OpenVINO differs from catdog by {worst:.2e} (> 1e-5)")
    print("OK: OpenVINO reads catdog's ONNX exports and matches predict within 1e-5")


def check(name, model, shape, scale):
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name + ".onnx")
        model.export(path, format="onnx")
        for n in (1, 3):
            xs = np.random.default_rng(n).uniform(0, scale, (n, *shape)).astype(np.float32)
            want = model.predict(xs, verbose=0)
            np.save(os.path.join(tmp, "x.npy"), xs)
            out = subprocess.run([OV_PYTHON, "-c", RUN_OV, path, os.path.join(tmp, "x.npy"),
                                  os.path.join(tmp, "y.npy")], capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"OpenVINO failed:\n{out.stderr[-2000:]}")
            got = np.load(os.path.join(tmp, "y.npy"))
            err = float(np.abs(got - want).max() / np.abs(want).max())
            worst = max(worst, err)
            print(f"{name} batch {n}: {out.stdout.strip()}; max relative difference {err:.2e}")
    return worst


if __name__ == "__main__":
    main()
