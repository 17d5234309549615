"""OpenVINO side (case 1 only): the ONNX Runtime side's ONNX export of the benchmark's PyTorch
network, compiled by OpenVINO's CPU plugin, in fp32 or (--precision bf16) bf16.

Run with benchmarks/.venv-ov/bin/python (openvino + onnx + numpy; see setup.sh). The network
is the file bench_onnxruntime.py's export() writes (PyTorch venv, legacy TorchScript exporter,
opset 17, dynamic batch): when the ONNX Runtime side of the same run.py run already wrote it
into the work folder, this side reads that very file; else it exports it the same way. Parity:
OpenVINO's logits against PyTorch eager's on the export's 4 images, like the ONNX Runtime
side (max|ov - torch| / max|torch| < 1e-4 in fp32). bf16 rounds activations and weights to 8
significant bits and Dense(1)'s sum over 1280 features cancels, so there the check is the
pooled 1280 features (an extra output of a copy of the model compiled for the check alone)
against OpenVINO fp32's: cosine >= 0.99 per image, the bar catdog's own bf16 mode meets
(tests/test_engine_bf16.py); the logits' error is reported beside it.

Settings (the default; `--ov-config` overrides, `--ov-sweep` times the alternatives):
  INFERENCE_PRECISION_HINT f32 | bf16   (f32 named explicitly: on CPUs with AVX512-BF16 the
                                          plugin's default would be bf16)
  PERFORMANCE_HINT LATENCY, INFERENCE_NUM_THREADS = --threads, NUM_STREAMS 1
  ENABLE_CPU_PINNING off (the LATENCY hint would pin): catdog leaves its threads to the
                    kernel's scheduler too, and a pinned thread cannot move off a core that
                    another process is using
  static shapes: the model reshaped to [32,3,160,160] and [1,3,160,160] and compiled once per
  batch size, as catdog plans once per batch size.
Calls go through one InferRequest per compiled model, `infer({0: x}, share_inputs=True)`
(the request reads the caller's array instead of copying it), output copied out.

--net resnet50|vgg16|mobilenetv3small|mobilenetv3large|efficientnetb0 (fp32): the ONNX Runtime
side's file for that network, catdog's own export (NHWC input, see bench_onnxruntime.py), or
a fresh one by the same code; parity against catdog's logits.
"""
import hashlib
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import flops  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LOGITS_TOL = 1e-4  # fp32: max|ov - torch| / max|torch|
COSINE_MIN = 0.99  # bf16: pooled features against fp32's, per image
PRECISION = {"fp32": "f32", "bf16": "bf16"}


def base_config(threads, precision):
    return {"INFERENCE_PRECISION_HINT": PRECISION[precision], "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}


# (name, config changes over base_config, shapes): the alternatives --ov-sweep times
SWEEP = [
    ("latency, 2 threads, 1 stream, no pinning, static", {}, "static"),
    ("the same, CPU pinning on (the hint's default)", {"ENABLE_CPU_PINNING": True}, "static"),
    ("the same, dynamic batch", {}, "dynamic"),
    ("throughput hint, 1 stream", {"PERFORMANCE_HINT": "THROUGHPUT"}, "static"),
    ("latency hint alone (the plugin picks threads, streams, pinning)",
     {"INFERENCE_NUM_THREADS": None, "NUM_STREAMS": None, "ENABLE_CPU_PINNING": None}, "static"),
]


def onnx_file(a, workdir):
    """(onnx path, npz path, export record): the ONNX Runtime side's file in this run's work
    folder when it is there, else a fresh export by the same code."""
    if a.net != "mobilenetv2":
        path = os.path.join(workdir, "%s_catdog.onnx" % a.net)
        done = os.path.join(workdir, "export_%s.json" % a.net)
    else:
        path = os.path.join(workdir, "mobilenet_v2_torch.onnx")
        done = os.path.join(workdir, "export.json")
    if os.path.exists(path) and os.path.exists(path + ".npz") and os.path.exists(done):
        with open(done) as f:
            rec = dict(json.load(f).get("export", {}), reused="written by the ONNX Runtime side")
        return path, path + ".npz", rec
    from bench_onnxruntime import export
    return export(a, workdir)


def features_and_logits(core, path, config, x, np):
    """The pooled features (the Dense layer's input, added as an output) and the logits of x."""
    m = core.read_model(path)
    n = m.get_results()[0].input_value(0).get_node()
    while n.get_type_name() != "MatMul":
        n = n.input_value(0).get_node()
    feat = [v for v in n.input_values() if v.get_partial_shape()[-1].get_length() == 1280][0]
    m.add_outputs([feat])
    r = core.compile_model(m, "CPU", {k: v for k, v in config.items() if v is not None}).create_infer_request()
    r.infer({0: x})
    return r.get_output_tensor(1).data.copy(), r.get_output_tensor(0).data.copy()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Runner:
    """One compiled model per batch size (static) or one for all (dynamic), each with its own
    InferRequest."""

    def __init__(self, ov, core, path, config, shapes, sample=(3, C.SIZE, C.SIZE)):
        self.ov, self.core, self.path, self.shapes = ov, core, path, shapes
        self.sample = list(sample)  # one image's shape: NCHW's (3, H, W), catdog's NHWC (H, W, 3)
        self.config = {k: v for k, v in config.items() if v is not None}
        self.compiled, self.requests, self.compile_s = {}, {}, {}

    def request(self, n):
        key = n if self.shapes == "static" else "dynamic"
        if key not in self.requests:
            m = self.core.read_model(self.path)
            if self.shapes == "static":
                m.reshape({m.input(0).get_any_name(): [n] + self.sample})
            t0 = time.perf_counter()
            cm = self.core.compile_model(m, "CPU", self.config)
            self.compile_s[key] = time.perf_counter() - t0
            self.compiled[key] = cm
            self.requests[key] = cm.create_infer_request()
        return self.requests[key]

    def __call__(self, x):
        r = self.request(x.shape[0])
        r.infer({0: x}, share_inputs=True)
        return r.get_output_tensor(0).data.copy()

    def properties(self, n):
        cm = self.compiled[n if self.shapes == "static" else "dynamic"]
        out = {}
        for k in ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "INFERENCE_NUM_THREADS",
                  "NUM_STREAMS", "ENABLE_CPU_PINNING", "OPTIMAL_NUMBER_OF_INFER_REQUESTS"):
            try:
                v = cm.get_property(k)
                out[k] = v.to_string() if hasattr(v, "to_string") else str(v)
            except Exception:  # a property this version does not report
                pass
        return out


def time_case1(run, st, reps, np):
    rng = np.random.default_rng(0)
    x32 = (rng.random(tuple([C.BATCH] + run.sample), dtype=np.float32) * 255)
    x1 = (rng.random(tuple([1] + run.sample), dtype=np.float32) * 255)
    t32 = C.time_steps(lambda: run(x32), st["warmup"], st["iters"], reps)
    t1 = C.time_steps(lambda: run(x1), st["warmup1"], st["iters1"], reps)
    return t32, t1


def profile(ov, core, path, config, n, calls, np, sample=(3, C.SIZE, C.SIZE)):
    """OpenVINO's per-node counters (PERF_COUNT): time and implementation (exec_type) summed
    by (node type, exec type), over `calls` calls at batch n."""
    r = Runner(ov, core, path, dict(config, PERF_COUNT=True), "static", sample)
    x = np.random.default_rng(0).random(tuple([n] + list(sample)), dtype=np.float32) * 255
    for _ in range(5):
        r(x)
    req = r.request(n)
    rows = {}
    t0 = time.perf_counter()
    for _ in range(calls):
        req.infer({0: x}, share_inputs=True)
        for p in req.get_profiling_info():
            if p.status != p.Status.EXECUTED:
                continue
            k = (p.node_type, p.exec_type)
            us = p.real_time.total_seconds() * 1e6 if hasattr(p.real_time, "total_seconds") else float(p.real_time)
            t, c = rows.get(k, (0.0, 0))
            rows[k] = (t + us, c + 1)
    wall = (time.perf_counter() - t0) / calls * 1e3
    out = sorted(({"node_type": k[0], "exec_type": k[1], "ms_per_call": t / calls / 1e3,
                   "nodes": c // calls} for k, (t, c) in rows.items()),
                 key=lambda d: -d["ms_per_call"])
    return {"batch": n, "calls": calls, "wall_ms_per_call": wall,
            "sum_ms_per_call": sum(d["ms_per_call"] for d in out), "rows": out}


def main():
    extra = [x for x in sys.argv[1:] if x.startswith("--ov-")]
    argv = [x for x in sys.argv[1:] if not x.startswith("--ov-")]
    opts = dict(x[5:].split("=", 1) if "=" in x else (x[5:], "1") for x in extra)
    a = C.parse_args("openvino", argv)
    prec = a.precision
    name = "openvino" if prec == "fp32" else "openvino-" + prec
    R = C.Result(name, a)
    st = C.settings(a.quick, a.net)
    reps = min(a.repeats, st["max_repeats"] or a.repeats)
    try:
        import numpy as np
        import openvino as ov
    except ImportError as e:
        R.unavailable("cannot import openvino (%s); run benchmarks/setup.sh ov" % e)
    if prec not in PRECISION:
        R.unavailable("precision %s: this side runs fp32 or bf16" % prec)
    core = ov.Core()
    caps = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if prec == "bf16" and "BF16" not in caps:
        R.unavailable("this CPU has no bf16 in OpenVINO's CPU capabilities (%s)" % ",".join(caps))
    config = base_config(a.threads, prec)
    if "config" in opts:  # --ov-config='{"PERFORMANCE_HINT": "THROUGHPUT"}'
        config.update(json.loads(opts["config"]))
    shapes = opts.get("shapes", "static")
    R.d["versions"] = {"openvino": ov.get_version(), "capabilities": ",".join(caps),
                       "mode": "%s, %s shapes, %s" % (prec, shapes, ", ".join(
                           "%s %s" % kv for kv in config.items()))}
    wanted = [c for c in a.case_list if c != 1]
    if wanted:
        R.d["errors"].update({str(c): "not available: the OpenVINO side runs case 1 only"
                              for c in wanted})
    workdir = os.path.dirname(os.path.abspath(a.json)) if a.json else tempfile.mkdtemp()
    fl = flops.summary(C.ALPHA, C.SIZE) if a.net == "mobilenetv2" else {}  # FLOPs: MobileNetV2's only
    sample = (3, C.SIZE, C.SIZE) if a.net == "mobilenetv2" else (a.size, a.size, 3)
    if a.net != "mobilenetv2":  # MobileNetV2's RESULTS.md lines stay as they were
        R.d["versions"]["net"] = a.net
    if a.net != "mobilenetv2" and prec != "fp32":
        R.unavailable("--net %s runs in fp32 only here" % a.net)
    state = {}

    def setup():
        if "run" not in state:
            path, npz, rec = onnx_file(a, workdir)
            rec["sha256"] = sha256(path)
            R.d["export"] = rec
            run = Runner(ov, core, path, config, shapes, sample)
            ref = np.load(npz)
            got = run(ref["x"])
            want = ref["logits"]
            err = float(np.abs(got - want).max() / np.abs(want).max())
            who = "torch" if a.net == "mobilenetv2" else "catdog"
            p = {"logits_rel_err": err, "logits_max_abs_err": float(np.abs(got - want).max()),
                 "logits_ov": got.ravel().tolist(), "logits_" + who: want.ravel().tolist(),
                 "ok": err < LOGITS_TOL, "tolerance": LOGITS_TOL, "against": who,
                 "definition": "max|ov - %s| / max|%s| over the logits (4 images)" % (who, who)}
            if prec != "fp32":
                f, _ = features_and_logits(core, path, config, ref["x"], np)
                f32, _ = features_and_logits(core, path, base_config(a.threads, "fp32"), ref["x"], np)
                cos = (f * f32).sum(1) / np.linalg.norm(f, axis=1) / np.linalg.norm(f32, axis=1)
                p.update(features_cosine_min=float(cos.min()), ok=bool(cos.min() >= COSINE_MIN),
                         tolerance=COSINE_MIN,
                         definition="min over 4 images of cos(pooled features %s, fp32); logits "
                                    "error against PyTorch fp32 reported, not judged" % prec)
            R.d["parity"] = p
            C.log("parity:", R.d["parity"])
            state.update(run=run, path=path)
        return state["run"]

    def case1():
        run = setup()
        t32, t1 = time_case1(run, st, reps, np)
        r = C.throughput_record(t32, C.BATCH, "InferRequest.infer (CPU plugin), %s, %s"
                                % ("NCHW" if a.net == "mobilenetv2" else "NHWC (catdog's export)", prec),
                                fl.get("case1_gflop_per_image"))
        r["batch1"] = C.latency_record(t1, "InferRequest.infer, batch 1")
        r["compile_s"] = run.compile_s.get(C.BATCH if shapes == "static" else "dynamic")
        r["batch1"]["compile_s"] = run.compile_s.get(1 if shapes == "static" else "dynamic")
        r["properties"] = run.properties(C.BATCH)
        if "sweep" in opts:
            r["sweep"] = sweep(state["path"])
        if "profile" in opts:
            r["profile"] = [profile(ov, core, state["path"], config, n, 20 if n == 1 else 5, np, sample)
                            for n in (C.BATCH, 1)]
        return r

    def sweep(path):
        """Each alternative timed in turn, then the whole list again in reverse order (a
        slow phase of the machine then hits different settings), medians of both passes."""
        runners = [(label, Runner(ov, core, path, dict(base_config(a.threads, prec), **chg), sh, sample))
                   for label, chg, sh in SWEEP]
        res = {label: {"b32": [], "b1": []} for label, _ in runners}
        for order in (runners, runners[::-1]):
            for label, run in order:
                t32, t1 = time_case1(run, st, reps, np)
                res[label]["b32"] += t32
                res[label]["b1"] += t1
                C.log("sweep", label, "%.1f img/s" % (C.BATCH / sorted(t32)[len(t32) // 2]),
                      "%.2f ms" % (1e3 * sorted(t1)[len(t1) // 2]))
        import statistics
        return [{"setting": label, "images_per_s": C.BATCH / statistics.median(v["b32"]),
                 "latency_ms": 1e3 * statistics.median(v["b1"]),
                 "properties": run.properties(C.BATCH)}
                for (label, run), v in zip(runners, res.values())]

    if 1 in a.case_list:
        C.log(name, "case", 1)
        R.run_case(1, case1)
    R.write(final=True)


if __name__ == "__main__":
    main()
