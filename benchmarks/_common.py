"""Helpers shared by the three benchmark sides (standard library only: each side runs in its
own interpreter/venv). A side is run as

    python benchmarks/bench_<side>.py --cases 1,2,3 --threads 2 --repeats 5 [--quick] --json OUT

and writes one JSON object to OUT: {"framework", "available", "reason", "versions", "cases":
{"1": {...}, ...}, "peak_rss_mb", "errors"}. A side whose framework is missing writes
available=false with the reason and exits with code 3; run.py reports it as "not available".
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("CATDOG_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
if not os.path.isdir(SHARED):
    SHARED = "/work/shared"
DATA_DIR = os.path.join(SHARED, "data", "cats_and_dogs_filtered")
WEIGHTS_H5 = os.path.join(SHARED, "weights",
                          "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")

BATCH = 32
SIZE = 160
ALPHA = 1.0
FINE_TUNE_AT = 100
SEED = 1234

NOT_AVAILABLE = 3  # exit code of a side whose framework/API is missing

# --net: the bases of issue 21 beside the lab's MobileNetV2 (the default, whose cases and
# RESULTS.md sections stay as they are). Per network: the builder (catdog.applications and
# keras.applications spell it the same), the input size (160 for all six: Keras's minimum
# for each no-top base is 32, so none needs 224), the layer fine-tuning starts at (catdog's
# documented per-family default, catdog/lab.py BASES and docs/applications.md, looked up by
# name in the base so every side trains the same layers), and where the base's
# preprocessing is: "model" (the family's preprocess_input called on the model's tensor, as
# catdog's lab: MobileNetV2's to [-1, 1], ResNet50's and VGG16's "caffe", BGR minus the
# ImageNet mean; `family` names the submodule) or "builtin" (MobileNetV3 / EfficientNet hold
# their Rescaling / Normalization inside the base). Weights: MobileNetV2 the ImageNet h5 of
# ../shared; the others seeded random (no ImageNet files here; speed does not depend on the
# values).
NETS = {
    "mobilenetv2": dict(builder="MobileNetV2", size=160, fine_tune_at=100, preprocessing="model",
                        family="mobilenet_v2"),
    "resnet50": dict(builder="ResNet50", size=160, fine_tune_at="conv5_block1_1_conv",
                     preprocessing="model", family="resnet50"),
    "vgg16": dict(builder="VGG16", size=160, fine_tune_at="block5_conv1", preprocessing="model",
                  family="vgg16"),
    "mobilenetv3small": dict(builder="MobileNetV3Small", size=160,
                             fine_tune_at="expanded_conv_6_expand", preprocessing="builtin"),
    "mobilenetv3large": dict(builder="MobileNetV3Large", size=160,
                             fine_tune_at="expanded_conv_10_expand", preprocessing="builtin"),
    "efficientnetb0": dict(builder="EfficientNetB0", size=160, fine_tune_at="block6a_expand_conv",
                           preprocessing="builtin"),
}
# torch.nn versions written to match Keras's layer for layer (bench_pytorch.py); torchvision's
# MobileNetV3 / EfficientNet differ from Keras's (see README), so those have no torch side.
TORCH_NETS = ("mobilenetv2", "resnet50", "vgg16")


def fine_tune_index(net, layer_names):
    """Index in the base's layer list where fine-tuning starts (Keras: base.layers[:k] frozen)."""
    at = NETS[net]["fine_tune_at"]
    return at if isinstance(at, int) else list(layer_names).index(at)


class NotAvailable(Exception):
    """The framework (or the API the benchmark needs) is not there."""


def parse_args(name, argv=None):
    p = argparse.ArgumentParser(description="%s side of the catdog benchmark" % name)
    p.add_argument("--cases", default="1,2,3", help="comma list of cases 1-5")
    p.add_argument("--net", default="mobilenetv2", choices=sorted(NETS),
                   help="the base (default the lab's MobileNetV2; the others run cases 1-3, "
                   "seeded random weights)")
    p.add_argument("--catdog-python", default=None,
                   help="(onnxruntime/openvino, --net other than mobilenetv2) interpreter with "
                   "catdog installed, which exports the network with model.export(format='onnx')")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    p.add_argument("--quick", action="store_true", help="few iterations, tiny lab: proves it runs")
    p.add_argument("--json", default=None, help="write results here (default: stdout)")
    p.add_argument("--data", default=DATA_DIR)
    p.add_argument("--weights", default=WEIGHTS_H5)
    p.add_argument("--lab-epochs", default="2,2", help="case 4: initial,fine-tune epochs")
    p.add_argument("--seed", type=int, default=SEED,
                   help="case 4: the framework's set_random_seed and the datasets' shuffle seed")
    p.add_argument("--dump-reference", default=None,
                   help="(tensorflow) write an npz with input/weights/outputs for the parity check")
    p.add_argument("--check-parity", default=None,
                   help="(pytorch) compare against an npz written by --dump-reference")
    p.add_argument("--precision", default="fp32", help="(catdog) fp32 or bf16")
    p.add_argument("--mode", default="eager", help="(pytorch) eager or compile (torch.compile, inductor)")
    p.add_argument("--export-onnx", default=None,
                   help="(pytorch) write the network as ONNX here plus <path>.npz with input/logits")
    p.add_argument("--onnx-site", default=None,
                   help="(pytorch --export-onnx) site-packages holding the onnx package (appended to sys.path)")
    p.add_argument("--torch-python", default=None,
                   help="(onnxruntime) interpreter of the PyTorch venv that exports the network")
    a = p.parse_args(argv)
    a.case_list = [int(c) for c in a.cases.split(",") if c.strip()]
    e = [int(x) for x in a.lab_epochs.split(",")]
    a.initial_epochs, a.fine_tune_epochs = e[0], e[1]
    if a.net != "mobilenetv2":  # cases 4-5 load ImageNet weights: MobileNetV2's only
        a.not_run = {c: "not run: --net %s times cases 1-3 only" % a.net for c in a.case_list if c > 3}
        a.case_list = [c for c in a.case_list if c <= 3]
    else:
        a.not_run = {}
    a.size = NETS[a.net]["size"]
    return a


def settings(quick, net="mobilenetv2"):
    """Iteration counts: (warmup steps, timed steps per repeat) for batch-32 and batch-1 runs.
    The other networks take up to 25x MobileNetV2's time per step (VGG16: ~8 GFLOP per image
    at 160, ~5 s per training step of 32 on 2 cores): fewer steps, so that all five on every
    side fit in ~40 minutes on 2 cores."""
    if quick:
        return dict(warmup=1, iters=2, warmup1=2, iters1=3, max_repeats=2)
    if net in ("resnet50", "vgg16"):
        return dict(warmup=1, iters=2, warmup1=3, iters1=10, max_repeats=None)
    if net != "mobilenetv2":
        return dict(warmup=3, iters=5, warmup1=5, iters1=20, max_repeats=None)
    return dict(warmup=3, iters=10, warmup1=10, iters1=30, max_repeats=None)


def peak_rss_mb():
    """Peak resident set size of this process (VmHWM), MiB; falls back to getrusage."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss():
    """Reset VmHWM (Linux >= 4.0: write 5 to clear_refs) so a later read is the peak from now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None


def validation_timer(callback_base):
    """A callback of the framework's own Callback class that sums the seconds of fit's
    validation passes (Keras calls on_test_begin / on_test_end around each)."""
    class ValidationTimer(callback_base):
        seconds = 0.0
        passes = 0
        _t = None

        def on_test_begin(self, logs=None):
            self._t = time.perf_counter()

        def on_test_end(self, logs=None):
            self.seconds += time.perf_counter() - self._t
            self.passes += 1

    return ValidationTimer()


def lab_record(a, epochs, times, history, history_fine, timers, test_loss, test_accuracy, what):
    """Case 4's record, the same on every side. times = perf_counter at: start, datasets and
    model built, transfer fit done, fine-tuning fit done, evaluate done; timers = the two
    fits' validation_timer()s. Training seconds = the fits' seconds minus their validation."""
    t0, t1, t2, t3, t4 = times
    val_s = timers[0].seconds + timers[1].seconds
    h, hf = history.history, history_fine.history
    return {"wall_s": t4 - t0, "setup_s": t1 - t0, "phase1_s": t2 - t1, "phase2_s": t3 - t2,
            "evaluate_s": t4 - t3, "train_s": (t3 - t1) - val_s, "validation_s": val_s,
            "validation_passes": timers[0].passes + timers[1].passes,
            "epochs": list(epochs), "quick": a.quick, "seed": a.seed,
            "peak_rss_mb": peak_rss_mb(),
            "transfer_val_accuracy": float(h["val_accuracy"][-1]),
            "transfer_val_loss": float(h["val_loss"][-1]),
            "final_val_accuracy": float(hf["val_accuracy"][-1]),
            "final_val_loss": float(hf["val_loss"][-1]),
            "test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
            "what": what % tuple(epochs)}


def time_steps(step, warmup, iters, repeats, sync=None):
    """Run `step()` warmup times, then `repeats` × (`iters` steps timed together).
    Returns the list of seconds per step, one entry per repeat."""
    for _ in range(warmup):
        step()
    if sync:
        sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        if sync:
            sync()
        out.append((time.perf_counter() - t0) / iters)
    return out


def throughput_record(sec_per_step, batch, method, gflop_per_image=None):
    med = statistics.median(sec_per_step)
    r = {"images_per_s": batch / med, "ms_per_step": 1e3 * med,
         "ms_per_step_all": [1e3 * s for s in sec_per_step], "batch": batch, "method": method}
    if gflop_per_image:
        r["gflop_per_s"] = gflop_per_image * batch / med
    return r


def latency_record(sec_per_call, method):
    med = statistics.median(sec_per_call)
    return {"latency_ms": 1e3 * med, "latency_ms_all": [1e3 * s for s in sec_per_call],
            "method": method}


class Result:
    def __init__(self, framework, args):
        self.args = args
        self.d = {"framework": framework, "available": True, "reason": None, "versions": {},
                  "threads": args.threads, "quick": args.quick, "cases": {}, "errors": {},
                  "python": sys.version.split()[0], "executable": sys.executable,
                  "net": getattr(args, "net", "mobilenetv2")}
        self.d["errors"].update({str(c): e for c, e in getattr(args, "not_run", {}).items()})

    def unavailable(self, reason):
        self.d["available"] = False
        self.d["reason"] = reason
        self.write()
        sys.exit(NOT_AVAILABLE)

    def run_case(self, case, fn):
        try:
            self.d["cases"][str(case)] = fn()
        except NotAvailable as e:
            self.d["errors"][str(case)] = "not available: %s" % e
        except Exception as e:  # keep the other cases going; report the failure
            self.d["errors"][str(case)] = "%s: %s" % (type(e).__name__, e)
            traceback.print_exc()
        self.write()  # write after every case so a later crash keeps what was measured

    def write(self, final=False):
        self.d["peak_rss_mb"] = peak_rss_mb()
        txt = json.dumps(self.d, indent=1, default=float)
        if not self.args.json:
            if final or not self.d["available"]:
                print(txt)
            return
        if self.args.json:
            tmp = self.args.json + ".tmp"
            with open(tmp, "w") as f:
                f.write(txt)
            os.replace(tmp, self.args.json)


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)
