"""Where a call's time goes: inside oneDNN's primitives, per implementation, against the time
outside them (catdog's plain-C layers, bookkeeping, the Python call).

    bash benchmarks/profile/build.sh
    .venv/bin/python benchmarks/profile/step_profile.py [--case predict|transfer|fine-tune]
                                                           [--batch 1] [--calls 300] [--threads 2]

--case predict times predict_on_batch; transfer and fine-tune time train_on_batch with the
base frozen / unfrozen from layer 100 (bench_catdog.py's cases 2 and 3). --net resnet50 (vgg16,
mobilenetv3small, ...) profiles the lab with that base as benchmarks/networks.py times it;
--model tutorial1|tutorial2 the classification tutorial's models at 180x180.

Runs itself again under LD_PRELOAD=primitive_timer.so, builds the lab's model (ImageNet
weights from ../shared, as bench_catdog.py), warms up, arms the timer, times `--calls`
predict_on_batch calls and prints a table of the shim's rows, summed by (kind, impl).
"""
import argparse
import collections
import csv
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
SHIM = os.path.join(HERE, "primitive_timer.so")


def child(a):
    sys.path.insert(0, BENCH)
    import numpy as np

    import _common as C
    import catdog
    from bench_catdog import build_lab_model, compile_frozen, unfreeze_and_compile

    catdog.set_num_threads(a.threads)
    if a.precision != "fp32":
        catdog.config.set_precision(a.precision)
    rng = np.random.default_rng(1)
    if a.model == "lab":
        model, base = build_lab_model(catdog, C.WEIGHTS_H5 if a.net == "mobilenetv2" else None,
                                      a.net)
        compile_frozen(catdog, model)
        if a.case == "fine-tune":
            unfreeze_and_compile(catdog, model, base, a.net)
        size, y = C.NETS[a.net]["size"], rng.integers(0, 2, (a.batch, 1)).astype("float32")
    else:
        model = tutorial_model(catdog, a.model == "tutorial2")
        size, y = 180, rng.integers(0, 2, (a.batch,)).astype("float32")
    x = rng.uniform(0, 255, (a.batch, size, size, 3)).astype("float32")
    import flops
    macs = flops.catdog_model_macs(model)
    with open(os.environ["CD_PROFILE_TOTAL"] + ".gflop", "w") as f:  # per call, multiply-adds x 2
        f.write(repr(2e-9 * a.batch * macs["forward" if a.case == "predict" else "train"]))
    call = (lambda: model.predict_on_batch(x)) if a.case == "predict" else \
        (lambda: model.train_on_batch(x, y))
    for _ in range(max(5, a.calls // 10)):
        call()
    open(os.environ["CD_PRIM_TIMER_ARM"], "w").close()
    t0 = time.perf_counter()
    for _ in range(a.calls):
        call()
    dt = time.perf_counter() - t0
    with open(os.environ["CD_PROFILE_TOTAL"], "w") as f:
        f.write(repr(dt))


def tutorial_model(catdog, augmented):
    """The classification tutorial's model 1 or 2 (benchmarks/classification_tutorial.py)."""
    layers = catdog.layers
    front = [layers.RandomFlip("horizontal", input_shape=(180, 180, 3)),
             layers.RandomRotation(0.1), layers.RandomZoom(0.1)] if augmented else []
    model = catdog.Sequential(front + [
        layers.Rescaling(1. / 255, **({} if augmented else {"input_shape": (180, 180, 3)})),
        layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D()]
        + ([layers.Dropout(0.2)] if augmented else []) + [
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(2)])
    model.compile(optimizer="adam",
                  loss=catdog.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=["predict", "transfer", "fine-tune"], default="predict")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--net", default="mobilenetv2", help="the lab's base (benchmarks/_common.py NETS; "
                    "other bases with seeded random weights)")
    ap.add_argument("--model", choices=["lab", "tutorial1", "tutorial2"], default="lab",
                    help="tutorial1/2: the classification tutorial's models at 180x180 "
                         "(--case predict or any training case)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--rows", action="store_true", help="also list every primitive with its source dims")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    if not os.path.exists(SHIM):
        sys.exit("build the shim first: bash benchmarks/profile/build.sh")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LD_PRELOAD=SHIM, CD_PRIM_TIMER_OUT=os.path.join(tmp, "t.tsv"),
                   CD_PRIM_TIMER_ARM=os.path.join(tmp, "armed"),
                   CD_PROFILE_TOTAL=os.path.join(tmp, "total"), OMP_NUM_THREADS=str(a.threads))
        subprocess.run([sys.executable, __file__, "--child"] + sys.argv[1:], env=env, check=True)
        total = float(open(os.path.join(tmp, "total")).read())
        gflop = float(open(os.path.join(tmp, "total.gflop")).read())
        rows = list(csv.DictReader(open(os.path.join(tmp, "t.tsv")), delimiter="\t"))
    by = collections.defaultdict(lambda: [0, 0.0, 0.0, 0])
    for r in rows:
        k = (r["kind"], r["impl"])
        by[k][0] += int(r["calls"])
        by[k][1] += float(r["inside_s"])
        by[k][2] += float(r["gap_before_s"])
        by[k][3] += 1
    inside = sum(v[1] for v in by.values())
    gaps = sum(v[2] for v in by.values())
    calls = sum(v[0] for v in by.values())
    n = a.calls
    print("%s, batch %d, %d threads, %s: %.3f ms per call; %d primitive calls per call (%d "
          "primitives)" % (a.case, a.batch, a.threads, a.precision, 1e3 * total / n, calls // n, len(rows)))
    conv = sum(v[1] for (kind, _), v in by.items() if kind in ("convolution", "matmul",
                                                               "inner_product"))
    print("  %.1f GFLOP per call (convolutions and matmuls): %.0f GFLOP/s over the call, %.0f "
          "GFLOP/s inside the convolution / matmul primitives (%.1f ms of the call)"
          % (gflop, gflop * n / total, gflop * n / max(conv, 1e-12), 1e3 * conv / n))
    print("  inside oneDNN %.3f ms (%.0f%%); outside it %.3f ms (%.0f%%: catdog's C layers, "
          "bookkeeping and, before each call's first primitive, the Python call); "
          "unaccounted %.3f ms"
          % (1e3 * inside / n, 100 * inside / total, 1e3 * gaps / n, 100 * gaps / total,
             1e3 * (total - inside - gaps) / n))
    print("\n%-14s %-34s %6s %10s %10s %10s" % ("kind", "impl", "prims", "calls/run", "ms/run", "gap ms/run"))
    for (kind, impl), v in sorted(by.items(), key=lambda kv: -kv[1][1])[:a.top]:
        print("%-14s %-34s %6d %10.0f %10.3f %10.3f" % (kind, impl[:34], v[3], v[0] / n, 1e3 * v[1] / n, 1e3 * v[2] / n))
    if a.rows:
        print("\n%-14s %-34s %-22s %10s %10s %10s" % ("kind", "impl", "src dims", "calls/run", "ms/run", "gap ms/run"))
        for r in sorted(rows, key=lambda r: -float(r["inside_s"])):
            print("%-14s %-34s %-22s %10.1f %10.3f %10.3f" % (r["kind"], r["impl"][:34], r["src_dims"], int(r["calls"]) / n,
                  1e3 * float(r["inside_s"]) / n, 1e3 * float(r["gap_before_s"]) / n))


if __name__ == "__main__":
    main()
