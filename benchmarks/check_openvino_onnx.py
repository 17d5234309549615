#!/usr/bin/env python3
"""OpenVINO reads catdog's ONNX export (issue 20: "OpenVINO reads it too"): the lab's model at
alpha 0.35, 96x96, seeded random weights, exported with `model.export(format="onnx")`, then read
and run by OpenVINO's CPU plugin in fp32 from its own venv (`bash benchmarks/setup.sh ov`), on
a dynamic batch of NHWC images; prints the largest relative difference to catdog's predict and
fails above 1e-5. OpenVINO is never a catdog dependency.

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
OV_PYTHON = os.path.join(HERE, ".venv-ov", "bin", "python")
RUN_OV = """
import sys, numpy as np, openvino as ov
core = ov.Core()
model = core.read_model(sys.argv[1])
compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
np.save(sys.argv[3], compiled(np.load(sys.argv[2]))[0])
print("OpenVINO", ov.__version__, "input", model.inputs[0].get_partial_shape())
"""


def main():
    if not os.path.exists(OV_PYTHON):
        sys.exit(f"no OpenVINO venv at {OV_PYTHON}: run `bash benchmarks/setup.sh ov` first")
    catdog.random.set_seed(1)
    base = catdog.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35,
                                           include_top=False, weights=None)
    base.trainable = False
    inputs = catdog.Input((96, 96, 3))
    x = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])(inputs)
    x = base(catdog.applications.mobilenet_v2.preprocess_input(x), training=False)
    x = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(x))
    model = catdog.Model(inputs, layers.Dense(1)(x))
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lab.onnx")
        model.export(path, format="onnx")
        for n in (1, 3):
            xs = np.random.default_rng(n).uniform(0, 255, (n, 96, 96, 3)).astype(np.float32)
            want = model.predict(xs, verbose=0)
            np.save(os.path.join(tmp, "x.npy"), xs)
            out = subprocess.run([OV_PYTHON, "-c", RUN_OV, path, os.path.join(tmp, "x.npy"),
                                  os.path.join(tmp, "y.npy")], capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"OpenVINO failed:\n{out.stderr[-2000:]}")
            got = np.load(os.path.join(tmp, "y.npy"))
            err = float(np.abs(got - want).max() / np.abs(want).max())
            worst = max(worst, err)
            print(f"batch {n}: {out.stdout.strip()}; max relative difference {err:.2e}")
    if worst > 1e-5:
        sys.exit(f"FAIL: OpenVINO differs from catdog by {worst:.2e} (> 1e-5)")
    print("OK: OpenVINO reads catdog's ONNX export and matches predict within 1e-5")


if __name__ == "__main__":
    main()
