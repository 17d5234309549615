"""ONNX Runtime side (case 1 only): the benchmark's PyTorch network, exported to ONNX, run by
ONNX Runtime's CPU execution provider.

Run with benchmarks/.venv-ort/bin/python (onnxruntime + onnx + numpy; see setup.sh). The
export runs in the PyTorch venv (`bench_pytorch.py --export-onnx`, legacy TorchScript
exporter, opset 17, dynamic batch axis), with this venv's onnx package appended to its
sys.path; it also writes an input batch and PyTorch's eager logits, which this side compares
with ONNX Runtime's output (max|ort - torch| / max|torch| < 1e-4, like the torch-vs-Keras
parity check). Session: intra_op_num_threads = --threads, inter_op_num_threads 1, sequential
execution, ORT_ENABLE_ALL graph optimizations, fp32, NCHW input.

--net resnet50|vgg16|mobilenetv3small|mobilenetv3large|efficientnetb0: the network is the one
catdog's side builds (seeded random base + head), exported by catdog's own ONNX exporter
(`bench_catdog.py --net X --export-onnx PATH`, run by --catdog-python: `model.export(PATH,
format="onnx")`, NHWC input transposed once inside the graph); parity is against catdog's
own logits on 4 images (max|ort - catdog| / max|catdog| < 1e-4).
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import flops  # noqa: E402

FRAMEWORK = "onnxruntime"
HERE = os.path.dirname(os.path.abspath(__file__))


def export_catdog(a, workdir):
    """--net other than mobilenetv2: catdog's exporter, in catdog's interpreter; returns (onnx
    path, npz path, export record)."""
    import json
    py = a.catdog_python
    if not py or not os.path.exists(py):
        raise C.NotAvailable("--catdog-python %s not found (catdog exports the %s network)" % (py, a.net))
    path = os.path.join(workdir, "%s_catdog.onnx" % a.net)
    out = os.path.join(workdir, "export_%s.json" % a.net)
    p = subprocess.run([py, os.path.join(HERE, "bench_catdog.py"), "--net", a.net, "--export-onnx",
                        path, "--threads", str(a.threads), "--json", out],
                       capture_output=True, text=True, cwd=HERE)
    if p.returncode or not os.path.exists(path):
        raise RuntimeError("catdog ONNX export failed: " + (p.stdout + p.stderr).strip()[-400:])
    with open(out) as f:
        rec = json.load(f).get("export", {})
    return path, path + ".npz", rec


def export(a, workdir):
    """Export with the PyTorch venv (MobileNetV2) or catdog (--net); returns (onnx path, npz
    path, export record)."""
    import json
    if getattr(a, "net", "mobilenetv2") != "mobilenetv2":
        return export_catdog(a, workdir)
    py = a.torch_python or os.path.join(HERE, ".venv-torch", "bin", "python")
    if not os.path.exists(py):
        raise C.NotAvailable("%s not found (the export needs PyTorch): run benchmarks/setup.sh" % py)
    import onnx
    site = os.path.dirname(os.path.dirname(os.path.abspath(onnx.__file__)))
    path = os.path.join(workdir, "mobilenet_v2_torch.onnx")
    out = os.path.join(workdir, "export.json")
    p = subprocess.run([py, os.path.join(HERE, "bench_pytorch.py"), "--export-onnx", path,
                        "--onnx-site", site, "--weights", a.weights, "--threads", str(a.threads),
                        "--json", out], capture_output=True, text=True, cwd=HERE)
    if p.returncode or not os.path.exists(path):
        raise RuntimeError("ONNX export failed: " + p.stderr.strip()[-400:])
    with open(out) as f:
        rec = json.load(f).get("export", {})
    return path, path + ".npz", rec


def main():
    a = C.parse_args(FRAMEWORK)
    R = C.Result(FRAMEWORK, a)
    st = C.settings(a.quick, a.net)
    reps = min(a.repeats, st["max_repeats"] or a.repeats)
    try:
        import numpy as np
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime as ort
    except ImportError as e:
        R.unavailable("cannot import onnxruntime/onnx (%s); run benchmarks/setup.sh ort" % e)
    R.d["versions"] = {"onnxruntime": ort.__version__, "onnx": onnx.__version__,
                       "providers": ",".join(ort.get_available_providers()),
                       "mode": "fp32, intra_op %d / inter_op 1, ORT_ENABLE_ALL" % a.threads}
    fl = flops.summary(C.ALPHA, C.SIZE) if a.net == "mobilenetv2" else {}  # FLOPs: MobileNetV2's only
    nhwc = a.net != "mobilenetv2"  # catdog's export takes NHWC, the torch export NCHW
    if a.net != "mobilenetv2":  # MobileNetV2's RESULTS.md lines stay as they were
        R.d["versions"]["net"] = a.net
    wanted = [c for c in a.case_list if c != 1]
    if wanted:
        R.d["errors"].update({str(c): "not available: the ONNX Runtime side runs case 1 only"
                              for c in wanted})
    workdir = os.path.dirname(os.path.abspath(a.json)) if a.json else tempfile.mkdtemp()
    state = {}

    def session():
        if "s" not in state:
            path, npz, rec = export(a, workdir)
            so = ort.SessionOptions()
            so.intra_op_num_threads = a.threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            t0 = time.perf_counter()
            s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            rec["session_s"] = time.perf_counter() - t0
            R.d["export"] = rec
            state["s"] = s
            state["input"] = s.get_inputs()[0].name
            # parity: the same input through ONNX Runtime vs PyTorch eager (catdog with --net)
            ref = np.load(npz)
            got = s.run(None, {state["input"]: ref["x"]})[0]
            want = ref["logits"]
            err = float(np.abs(got - want).max() / np.abs(want).max())
            who = "catdog" if nhwc else "torch"
            R.d["parity"] = {"logits_rel_err": err, "logits_max_abs_err": float(np.abs(got - want).max()),
                             "logits_ort": got.ravel().tolist(), "logits_" + who: want.ravel().tolist(),
                             "ok": err < 1e-4, "against": who,
                             "definition": "max|ort - %s| / max|%s| over the logits (4 images)" % (who, who)}
            C.log("parity:", R.d["parity"])
        return state["s"]

    def case1():
        s = session()
        rng = np.random.default_rng(0)
        shape = (a.size, a.size, 3) if nhwc else (3, C.SIZE, C.SIZE)
        x32 = (rng.random((C.BATCH,) + shape, dtype=np.float32) * 255)
        x1 = (rng.random((1,) + shape, dtype=np.float32) * 255)
        name = state["input"]
        t32 = C.time_steps(lambda: s.run(None, {name: x32}), st["warmup"], st["iters"], reps)
        t1 = C.time_steps(lambda: s.run(None, {name: x1}), st["warmup1"], st["iters1"], reps)
        r = C.throughput_record(t32, C.BATCH, "InferenceSession.run (CPU EP), %s fp32"
                                % ("NHWC (catdog's export)" if nhwc else "NCHW"),
                                fl.get("case1_gflop_per_image"))
        r["batch1"] = C.latency_record(t1, "InferenceSession.run, batch 1")
        return r

    if 1 in a.case_list:
        C.log(FRAMEWORK, "case", 1)
        R.run_case(1, case1)
    R.write(final=True)


if __name__ == "__main__":
    main()
