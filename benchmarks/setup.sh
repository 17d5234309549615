#!/usr/bin/env bash
# Creates the benchmark-only virtual environments for the reference frameworks.
# These are NOT catdog dependencies and are never installed by `pip install .`.
#   benchmarks/.venv-tf     tensorflow-cpu==2.21.0 (Keras 3 with the TensorFlow backend) + h5py, pillow
#   benchmarks/.venv-torch  torch==2.13.0 (CPU build) + numpy, pillow, h5py
#                           (also runs torch.compile: inductor needs a C++ compiler, g++)
#   benchmarks/.venv-ort    onnxruntime==1.31.1 + onnx==1.23.2 + numpy (the network is exported
#                           by .venv-torch, which borrows this venv's onnx package for it)
#   benchmarks/.venv-ov     openvino==2026.4.1 + onnx==1.23.2 + numpy (reads the ONNX Runtime
#                           side's export; onnx is there for exporting when that side did not run)
# catdog itself runs from the interpreter where it is pip-installed (the system python).
# networks.py (issue 21's other bases, --net) needs nothing more: its torch side is ResNet50 /
# VGG16 written with torch.nn in .venv-torch (no torchvision: its resnet50 is v1.5, not Keras's
# v1, and here it would need torch 2.14.1, a 5.5 GB CUDA build), and ONNX Runtime / OpenVINO
# read catdog's own ONNX export, made by catdog's interpreter (its `onnx` comes with catdog's
# [test] or [onnx] extra: `bash scripts/test.sh` installs it).
#
# Usage: bash benchmarks/setup.sh [tf|torch|ort|ov|all]   (default all; re-running is a no-op when done)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
which="${1:-all}"

make_venv() {  # name, packages...
  local dir="$here/$1"; shift
  if [ -x "$dir/bin/python" ] && [ -f "$dir/.ok" ]; then
    echo "[setup] $dir already set up"; return 0
  fi
  echo "[setup] creating $dir with $PY"
  "$PY" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  "$dir/bin/python" -m pip install "$@"
  touch "$dir/.ok"
}

if [ "$which" = tf ] || [ "$which" = all ]; then
  make_venv .venv-tf "tensorflow-cpu==2.21.0" h5py pillow
  "$here/.venv-tf/bin/python" -c "import tensorflow as tf, keras; print('[setup] tensorflow', tf.__version__, 'keras', keras.__version__)"
fi
if [ "$which" = torch ] || [ "$which" = all ]; then
  # Only this exact version: the CPU build lies on disk for Python 3.11. Any other version
  # would pull multi-GB CUDA builds.
  make_venv .venv-torch "torch==2.13.0" numpy pillow h5py
  "$here/.venv-torch/bin/python" -c "import torch; print('[setup] torch', torch.__version__, 'mkldnn', torch.backends.mkldnn.is_available())"
fi
if [ "$which" = ort ] || [ "$which" = all ]; then
  make_venv .venv-ort "onnxruntime==1.31.1" "onnx==1.23.2" numpy
  "$here/.venv-ort/bin/python" -c "import onnxruntime as o, onnx; print('[setup] onnxruntime', o.__version__, 'onnx', onnx.__version__)"
fi
if [ "$which" = ov ] || [ "$which" = all ]; then
  make_venv .venv-ov "openvino==2026.4.1" "onnx==1.23.2" numpy
  "$here/.venv-ov/bin/python" -c "import openvino as ov; print('[setup] openvino', ov.get_version(), ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))"
fi
