#!/usr/bin/env python3
"""bf16 against fp32 on one model, interleaved (issue 24 section 2): the lab's training steps
(bench_catdog.py's cases 2 and 3: train_on_batch at batch 32 on the lab's model with the
ImageNet MobileNetV2 from ../shared) and predict at batch 32, switching the precision of the
same model back and forth so that both see the same phases of a shared machine.

    .venv/bin/python benchmarks/bench_bf16_step.py [--rounds 8] [--steps 4] [--cases fine-tune,transfer,predict]

Each round times --steps calls in fp32 and --steps calls in bf16 (the order alternates from
round to round), after 2 warm-up calls per switch (a switch rebuilds the plans and oneDNN
primitives). Reports per case the median ms per call of each precision and the median of the
per-round fp32/bf16 ratios (the figure the issue's target reads), and writes them as JSON with
--json. Needs AVX512-BF16 or AMX; numbers depend on the machine and on what else runs."""
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

import _common as C  # noqa: E402
import bench_catdog as B  # noqa: E402

CASES = ("fine-tune", "transfer", "predict")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--weights", default=C.WEIGHTS_H5)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    cases = [c for c in a.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            sys.exit(f"unknown case {c!r}; choose from {', '.join(CASES)}")

    catdog = B.import_catdog()
    catdog.set_num_threads(a.threads)
    try:
        catdog.config.set_precision("bf16")
    except ValueError as e:
        sys.exit(f"bf16 is not available here: {e}")
    catdog.config.set_precision("fp32")
    model, base = B.build_lab_model(catdog, a.weights)
    x, y = B.random_batch(C.BATCH)
    out = {"source": B.catdog_source(catdog), "machine": platform.processor() or platform.machine(),
           "cpu": cpu_model(), "threads": a.threads, "rounds": a.rounds, "steps": a.steps,
           "load_before": os.getloadavg()[0], "cases": {}}
    for case in cases:
        if case == "fine-tune":
            B.unfreeze_and_compile(catdog, model, base)
            call = lambda: model.train_on_batch(x, y)  # noqa: E731
        elif case == "transfer":
            base.trainable = False
            B.compile_frozen(catdog, model)
            call = lambda: model.train_on_batch(x, y)  # noqa: E731
        else:
            call = lambda: model.predict_on_batch(x)  # noqa: E731
        ms = {"fp32": [], "bf16": []}
        for r in range(a.rounds):
            order = ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")
            for precision in order:
                catdog.config.set_precision(precision)
                for _ in range(2):
                    call()
                t = time.perf_counter()
                for _ in range(a.steps):
                    call()
                ms[precision].append((time.perf_counter() - t) / a.steps * 1e3)
        catdog.config.set_precision("fp32")
        ratios = [f / b for f, b in zip(ms["fp32"], ms["bf16"])]
        rec = {"fp32_ms": statistics.median(ms["fp32"]), "bf16_ms": statistics.median(ms["bf16"]),
               "ratio_median": statistics.median(ratios), "ratios": ratios,
               "fp32_all": ms["fp32"], "bf16_all": ms["bf16"]}
        out["cases"][case] = rec
        print(f"{case:10s} fp32 {rec['fp32_ms']:7.1f} ms  bf16 {rec['bf16_ms']:7.1f} ms  "
              f"fp32/bf16 per round: median {rec['ratio_median']:.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f})", flush=True)
    out["load_after"] = os.getloadavg()[0]
    print(f"load average {out['load_before']:.2f} before, {out['load_after']:.2f} after; "
          f"{out['source']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    main()
