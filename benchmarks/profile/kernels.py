"""Which kernels catdog and OpenVINO pick for the lab's inference, and where each spends a call.

    .venv/bin/python benchmarks/profile/kernels.py [--precision fp32|bf16] [--batch 32|1]
                                                   [--calls 10] [--threads 2]

catdog: `predict_on_batch` of the lab's model (bench_catdog.py's case 1) under ONEDNN_VERBOSE=1
(oneDNN 3.2 prints one `exec` line per primitive execution with its implementation and time);
the lines of the timed calls are summed by (primitive kind, implementation).
OpenVINO: bench_openvino.py --ov-profile (benchmarks/.venv-ov), the CPU plugin's PERF_COUNT
counters of the same calls summed by (node type, exec type), on the ONNX file it exports
(or `--onnx PATH`, e.g. a run's benchmarks/_work/<stamp>/mobilenet_v2_torch.onnx).
The two sides run one after the other in this one command, so they see the same machine.
Both sums are per call; "wall" is the whole call (Python included), and on catdog's side the
difference is its plain-C layers (GAP, dense), bookkeeping and the Python call.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
MARK = "CD_KERNELS_TIMED"


def catdog_child(a):
    sys.path.insert(0, BENCH)
    import numpy as np

    import _common as C
    import catdog
    from bench_catdog import build_lab_model, compile_frozen

    catdog.set_num_threads(a.threads)
    if a.precision != "fp32":
        catdog.config.set_precision(a.precision)
    model, _ = build_lab_model(catdog, C.WEIGHTS_H5)
    compile_frozen(catdog, model)
    x = np.random.default_rng(0).uniform(0, 255, (a.batch, C.SIZE, C.SIZE, 3)).astype("float32")
    for _ in range(5):
        model.predict_on_batch(x)
    sys.stdout.flush()
    os.write(1, (MARK + "\n").encode())  # oneDNN flushes each verbose line: the order holds
    t0 = time.perf_counter()
    for _ in range(a.calls):
        model.predict_on_batch(x)
    dt = (time.perf_counter() - t0) / a.calls
    sys.stdout.flush()
    os.write(1, ("%s wall %r\n" % (MARK, dt)).encode())


def catdog_side(a):
    env = dict(os.environ, ONEDNN_VERBOSE="1", OMP_NUM_THREADS=str(a.threads))
    p = subprocess.run([sys.executable, __file__, "--catdog-child"] + sys.argv[1:], env=env,
                       capture_output=True, text=True, cwd=tempfile.gettempdir())
    if p.returncode:
        sys.exit("catdog child failed: " + p.stderr[-600:])
    lines = p.stdout.splitlines()
    start = lines.index(MARK)
    by = collections.defaultdict(lambda: [0, 0.0])
    wall = None
    for ln in lines[start + 1:]:
        if ln.startswith(MARK + " wall"):
            wall = float(ln.split()[-1])
            break
        f = ln.split(",")
        if len(f) > 5 and f[0] == "onednn_verbose" and f[1] == "exec":
            k = (f[3], f[4])
            by[k][0] += 1
            by[k][1] += float(f[-1])
    rows = [{"kind": k[0], "impl": k[1], "prims": v[0] / a.calls, "ms": v[1] / a.calls}
            for k, v in by.items()]
    return {"wall_ms": 1e3 * wall, "rows": sorted(rows, key=lambda r: -r["ms"])}


def openvino_side(a, workdir):
    py = os.path.join(BENCH, ".venv-ov", "bin", "python")
    if not os.path.exists(py):
        sys.exit("%s not found: bash benchmarks/setup.sh ov" % py)
    out = os.path.join(workdir, "ov.json")
    if a.onnx:  # bench_openvino reads <workdir>/mobilenet_v2_torch.onnx(.npz) + export.json
        for ext in ("", ".npz"):
            os.symlink(os.path.abspath(a.onnx + ext), os.path.join(workdir, "mobilenet_v2_torch.onnx" + ext))
        with open(os.path.join(workdir, "export.json"), "w") as f:
            json.dump({"export": {"path": a.onnx}}, f)
    p = subprocess.run([py, os.path.join(BENCH, "bench_openvino.py"), "--cases", "1", "--quick",
                        "--repeats", "1", "--threads", str(a.threads), "--precision", a.precision,
                        "--ov-profile", "--json", out], capture_output=True, text=True, cwd=BENCH,
                       env=dict(os.environ, OMP_NUM_THREADS=str(a.threads)))
    if p.returncode or not os.path.exists(out):
        sys.exit("OpenVINO child failed: " + p.stderr[-600:])
    prof = [x for x in json.load(open(out))["cases"]["1"]["profile"] if x["batch"] == a.batch][0]
    rows = [{"kind": r["node_type"], "impl": r["exec_type"], "prims": r["nodes"], "ms": r["ms_per_call"]}
            for r in prof["rows"]]
    return {"wall_ms": prof["wall_ms_per_call"], "rows": rows, "calls": prof["calls"]}


def table(name, res):
    tot = sum(r["ms"] for r in res["rows"])
    print("\n%s: wall %.2f ms per call, %.2f ms inside its kernels (%.0f%%)"
          % (name, res["wall_ms"], tot, 100 * tot / res["wall_ms"]))
    print("%-18s %-38s %7s %9s %6s" % ("kind", "implementation", "n/call", "ms/call", "share"))
    for r in res["rows"]:
        print("%-18s %-38s %7.0f %9.3f %5.0f%%" % (r["kind"][:18], r["impl"][:38], r["prims"], r["ms"],
                                                  100 * r["ms"] / tot))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--batch", type=int, default=32, choices=[32, 1])
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onnx", default=None, help="the ONNX file to give OpenVINO (default: export one)")
    ap.add_argument("--json", default=None, help="also write both sides' tables here")
    ap.add_argument("--catdog-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.catdog_child:
        return catdog_child(a)
    with tempfile.TemporaryDirectory() as tmp:
        cd = catdog_side(a)
        ov = openvino_side(a, tmp)
    print("batch %d, %s, %d threads; load average %s" % (a.batch, a.precision, a.threads,
                                                         open("/proc/loadavg").read().split()[0]))
    table("catdog (ONEDNN_VERBOSE, %d calls)" % a.calls, cd)
    table("OpenVINO (PERF_COUNT, %d calls)" % ov["calls"], ov)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"catdog": cd, "openvino": ov, "args": vars(a)}, f, indent=1)


if __name__ == "__main__":
    main()
