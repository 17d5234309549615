"""Interleaved A/B of two catdog builds on the lab's MobileNetV2 model: cases 1-3 of run.py
(inference at batch 32 and batch 1, the transfer step, the fine-tuning step from layer 100),
in fp32 and bf16, each build in its own interpreter (a venv where it is pip-installed).

Rounds alternate the builds (A B, B A, A B, ...) so that a slow phase of the host hits both;
each round is a fresh process per build and precision that builds the model and times every
case. Reported: per case the median over rounds of each build's median step time, and B/A
(below 1: B is faster). Run it on a quiet machine:

    python benchmarks/ab_engine.py --a /work/ab-base/.venv/bin/python --b .venv/bin/python \\
        --rounds 5 --precision fp32,bf16 --out benchmarks/ab_engine.json

The worker side (--worker) is this file run by each build's interpreter.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CASES = ("predict_b32", "predict_b1", "transfer_step", "finetune_step")


def worker(precision, weights, threads, net="mobilenetv2"):
    """Time each case in this interpreter's catdog; print one JSON line of ms per case."""
    import numpy as np

    import _common as C
    import bench_catdog as B

    import catdog
    catdog.set_num_threads(threads)
    if precision != "fp32":
        catdog.config.set_precision(precision)
    if net == "mobilenetv2":
        model, base = B.build_lab_model(catdog, weights)
    else:  # another base (benchmarks/_common.py NETS): seeded random weights, its size
        model, base = B.build_lab_model(catdog, None, net)
        C.SIZE = C.NETS[net]["size"]
    B.compile_frozen(catdog, model)
    x32, y32 = B.random_batch(C.BATCH)
    x1, _ = B.random_batch(1, seed=1)

    def per_call(fn, warmup, iters):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return 1e3 * statistics.median(times)

    out = {"file": catdog.__file__}
    out["predict_b32"] = per_call(lambda: model.predict_on_batch(x32), 3, 15)
    out["predict_b1"] = per_call(lambda: model.predict_on_batch(x1), 10, 60)
    out["transfer_step"] = per_call(lambda: model.train_on_batch(x32, y32), 3, 12)
    B.unfreeze_and_compile(catdog, model, base, net)
    out["finetune_step"] = per_call(lambda: model.train_on_batch(x32, y32), 3, 12)
    print(json.dumps(out))
    sys.stdout.flush()
    del np


def run_side(python, precision, weights, threads, net="mobilenetv2"):
    cmd = [python, os.path.abspath(__file__), "--worker", "--precision", precision,
           "--weights", weights, "--threads", str(threads), "--net", net]
    env = dict(os.environ, PYTHONPATH="")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/")
    if res.returncode != 0:
        raise RuntimeError(f"{python} ({precision}) failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def commit_of(python):
    code = "import catdog, os; print(os.path.dirname(catdog.__file__))"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, text=True,
                              cwd="/").stdout.strip()
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--a", help="interpreter of build A (the baseline)")
    ap.add_argument("--b", help="interpreter of build B (the change)")
    ap.add_argument("--a-label", default="A")
    ap.add_argument("--b-label", default="B")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", default=os.path.join(
        HERE, "..", "..", "shared", "weights",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--net", default="mobilenetv2",
                    help="the lab's base (benchmarks/_common.py NETS; others: random weights)")
    a = ap.parse_args()
    if a.worker:
        worker(a.precision, a.weights, a.threads, a.net)
        return
    if not (a.a and a.b):
        ap.error("--a and --b name the two builds' interpreters")
    precisions = a.precision.split(",")
    runs = {p: {"A": [], "B": []} for p in precisions}
    for r in range(a.rounds):
        order = ("A", "B") if r % 2 == 0 else ("B", "A")
        for p in precisions:
            for side in order:
                res = run_side(a.a if side == "A" else a.b, p, a.weights, a.threads, a.net)
                runs[p][side].append(res)
                print(f"round {r + 1} {p} {side}: " +
                      ", ".join(f"{c} {res[c]:.2f} ms" for c in CASES), flush=True)
    summary = {}
    for p in precisions:
        summary[p] = {}
        for c in CASES:
            ma = statistics.median(x[c] for x in runs[p]["A"])
            mb = statistics.median(x[c] for x in runs[p]["B"])
            summary[p][c] = {"A_ms": ma, "B_ms": mb, "B/A": mb / ma}
            print(f"{p:5s} {c:14s} A {ma:8.2f} ms  B {mb:8.2f} ms  B/A {mb / ma:.3f}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"a": {"label": a.a_label, "python": a.a, "package": commit_of(a.a)},
                       "b": {"label": a.b_label, "python": a.b, "package": commit_of(a.b)},
                       "machine": platform.processor() or platform.machine(),
                       "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0]
                       .strip(" :\t") if os.path.exists("/proc/cpuinfo") else "?",
                       "rounds": a.rounds, "threads": a.threads, "net": a.net,
                       "summary": summary,
                       "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
