#!/usr/bin/env python3
"""The "Image classification" tutorial's full version, catdog against TensorFlow/Keras.

    .venv/bin/python benchmarks/classification_tutorial.py [--seeds 1,2,3] [--sides catdog,tensorflow]
        [--epochs 10,15] [--images 2000] [--val-images 1000] [--split] [--threads 2]
    .venv/bin/python benchmarks/classification_tutorial.py --report-only

What runs (issue 22, section 4): the tensorflow/docs tutorial `images/classification.ipynb`
(tests/test_classification_tutorial.py transcribes it cell by cell) with the flowers replaced by
../shared's cats_and_dogs_filtered at 180x180, batch 32: `image_dataset_from_directory` ->
`cache().shuffle(1000).prefetch(AUTOTUNE)` -> model 1 (Rescaling, three Conv2D(relu) +
MaxPooling2D, Flatten, Dense(128, relu), Dense(2)) trained 10 epochs with Adam and
SparseCategoricalCrossentropy(from_logits=True) -> model 2 (RandomFlip / RandomRotation(0.1) /
RandomZoom(0.1) in front, Dropout(0.2) before Flatten) trained 15 epochs. The code is the same
function on both sides (`tutorial()` below, with `keras` bound to catdog or to Keras 3 on
TensorFlow), each run a fresh process of this file (`--child SIDE`) with the side's
interpreter: catdog's (this one, or --catdog-python) and benchmarks/.venv-tf's (or --tf-python).

The data: the 2,000 images of train/ for training and the 1,000 of validation/ for validation
(the default), not the tutorial's `validation_split=0.2` of one folder: the issue names 2,000
training images, and 1,000 validation images give each accuracy a standard error of ~1.5
points instead of ~2.4 with the split's 400, which the side-by-side comparison needs.
`--split` runs the tutorial's own split of train/ instead (1,600 / 400, `seed=123`). At a seed
both sides shuffle with that seed and call set_random_seed(seed); they see the same images but
not the same order or draws (each framework's own generators).

Per run: wall time from building the datasets to the end of the second fit (not the import),
split into set-up, the two fits, and within them training and validation (on_test_begin /
on_test_end callbacks), peak RSS, each epoch's loss / accuracy / val_loss / val_accuracy.
Report (section "The image classification tutorial side by side" of RESULTS.md, which run.py
re-renders with it): per-seed rows; mean ± sd per side; the wall-time ratio of the medians
against the target (catdog <= 0.5x TensorFlow's) and each final validation accuracy against
TensorFlow's seeds: "within the spread" = catdog's mean between TensorFlow's lowest and
highest seed (with 3 seeds a permutation test cannot reach p < 0.1, so it is shown, not used).

Writes benchmarks/classification_tutorial.json after every run (unless --json names another
file; --quick or a reduced --images writes nothing into RESULTS.md).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import _common as C  # noqa: E402  (standard library only)

JSON = os.path.join(HERE, "classification_tutorial.json")
SIDES = ["catdog", "tensorflow"]
NAMES = {"catdog": "catdog", "tensorflow": "TensorFlow/Keras"}
REF = "tensorflow"
TARGET_RATIO = 0.5  # issue 22: catdog's wall time <= 0.5x TensorFlow's
SIZE = 180
BATCH = 32
SPLIT_SEED = 123  # the tutorial's validation_split seed
ACCURACIES = [("model1_val_accuracy", "model 1 final val. acc."),
              ("model2_val_accuracy", "model 2 final val. acc.")]


# --------------------------------------------------------------------------- the child
def tutorial(keras, layers, AUTOTUNE, a, timer_base):
    """The tutorial's cells (classification.ipynb, 2025 text) as one function; `keras` is
    catdog or Keras 3. Returns the run's record."""
    t0 = time.perf_counter()
    img_height = img_width = SIZE
    if a.split:  # the tutorial's own split of one folder
        kw = dict(validation_split=0.2, seed=SPLIT_SEED, image_size=(img_height, img_width),
                  batch_size=BATCH)
        train_ds = keras.utils.image_dataset_from_directory(a.train_dir, subset="training", **kw)
        val_ds = keras.utils.image_dataset_from_directory(a.train_dir, subset="validation", **kw)
    else:
        kw = dict(seed=a.seed, image_size=(img_height, img_width), batch_size=BATCH)
        train_ds = keras.utils.image_dataset_from_directory(a.train_dir, **kw)
        val_ds = keras.utils.image_dataset_from_directory(a.val_dir, **kw)
    class_names = train_ds.class_names
    train_ds = train_ds.cache().shuffle(1000).prefetch(buffer_size=AUTOTUNE)
    val_ds = val_ds.cache().prefetch(buffer_size=AUTOTUNE)
    num_classes = len(class_names)

    model = keras.Sequential([
        layers.Rescaling(1./255, input_shape=(img_height, img_width, 3)),
        layers.Conv2D(16, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation='relu'),
        layers.Dense(num_classes)
    ])
    model.compile(optimizer='adam',
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    e1, e2 = a.epoch_list
    timers = [C.validation_timer(timer_base), C.validation_timer(timer_base)]
    t1 = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=e1, callbacks=[timers[0]],
                        verbose=2)
    t2 = time.perf_counter()

    data_augmentation = keras.Sequential([
        layers.RandomFlip("horizontal", input_shape=(img_height, img_width, 3)),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.1),
    ])
    model = keras.Sequential([
        data_augmentation,
        layers.Rescaling(1./255),
        layers.Conv2D(16, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Dropout(0.2),
        layers.Flatten(),
        layers.Dense(128, activation='relu'),
        layers.Dense(num_classes, name="outputs")
    ])
    model.compile(optimizer='adam',
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    t3 = time.perf_counter()
    history2 = model.fit(train_ds, validation_data=val_ds, epochs=e2, callbacks=[timers[1]],
                         verbose=2)
    t4 = time.perf_counter()
    val_s = timers[0].seconds + timers[1].seconds

    def hist(h):
        return {k: [float(v) for v in h.history[k]]
                for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    h1, h2 = hist(history), hist(history2)
    return {"seed": a.seed, "epochs": [e1, e2], "wall_s": t4 - t0, "setup_s": t1 - t0,
            "fit1_s": t2 - t1, "fit2_s": t4 - t3, "train_s": (t2 - t1) + (t4 - t3) - val_s,
            "validation_s": val_s, "peak_rss_mb": C.peak_rss_mb(),
            "model1_val_accuracy": h1["val_accuracy"][-1], "model2_val_accuracy": h2["val_accuracy"][-1],
            "model1_accuracy": h1["accuracy"][-1], "model2_accuracy": h2["accuracy"][-1],
            "history1": h1, "history2": h2, "classes": list(class_names)}


def child(a):
    out = {"side": a.child, "python": sys.version.split()[0], "executable": sys.executable}
    if a.child == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras
        from keras import layers
        out["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__}
        autotune, base = tf.data.AUTOTUNE, keras.callbacks.Callback
    else:
        import catdog as keras
        from catdog import layers
        keras.set_num_threads(a.threads)
        out["versions"] = {"catdog": getattr(keras, "__version__", "?")}
        autotune, base = keras.data.AUTOTUNE, keras.callbacks.Callback
    keras.utils.set_random_seed(a.seed)
    out["run"] = tutorial(keras, layers, autotune, a, base)
    with open(a.json + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(a.json + ".tmp", a.json)


# --------------------------------------------------------------------------- the parent
def subset(src, per_class, dst):
    """dst/<class>/ with symlinks to the first `per_class` images (sorted) of src/<class>/."""
    for cls in sorted(os.listdir(src)):
        if not os.path.isdir(os.path.join(src, cls)):
            continue
        os.makedirs(os.path.join(dst, cls), exist_ok=True)
        names = sorted(f for f in os.listdir(os.path.join(src, cls)) if f.lower().endswith(".jpg"))
        if len(names) < per_class:
            raise SystemExit("%s/%s has %d images, fewer than %d" % (src, cls, len(names), per_class))
        for f in names[:per_class]:
            os.symlink(os.path.join(src, cls, f), os.path.join(dst, cls, f))
    return dst


def count(folder):
    return sum(len(files) for _, _, files in os.walk(folder, followlinks=True))


def run_one(side, seed, a, workdir, train_dir, val_dir):
    py = (a.catdog_python or os.environ.get("CATDOG_PYTHON") or sys.executable) if side == "catdog" \
        else (a.tf_python or os.path.join(HERE, ".venv-tf", "bin", "python"))
    if not os.path.exists(py):
        return None, "%s not found: run `bash benchmarks/setup.sh tf` (or pass --tf-python)" % py
    out = os.path.join(workdir, "%s_seed%d.json" % (side, seed))
    logf = os.path.join(workdir, "%s_seed%d.log" % (side, seed))
    cmd = [py, os.path.abspath(__file__), "--child", side, "--seed", str(seed), "--epochs", a.epochs,
           "--threads", str(a.threads), "--train-dir", train_dir, "--val-dir", val_dir, "--json", out]
    if a.split:
        cmd.append("--split")
    import run  # catdog's benchmark runner: the children's environment (threads, TF logging)
    env = run.child_env(a.threads)
    print("[tutorial] %-10s seed %d" % (side, seed), flush=True)
    t0 = time.perf_counter()
    with open(logf, "w") as lf:
        p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env, cwd=HERE)
        _, status, ru = os.wait4(p.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0 or not os.path.exists(out):
        tail = open(logf, errors="replace").read().strip().splitlines()[-3:]
        return None, "exit code %s: %s" % (rc, " | ".join(tail))
    res = json.load(open(out))
    rec = res["run"]
    rec.update(process_wall_s=time.perf_counter() - t0, process_maxrss_mb=ru.ru_maxrss / 1024.0,
               versions=res.get("versions", {}), log=os.path.relpath(logf, ROOT))
    return rec, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--epochs", default="10,15", help="model 1, model 2 (the tutorial's 10,15)")
    ap.add_argument("--images", type=int, default=2000, help="training images (half per class)")
    ap.add_argument("--val-images", type=int, default=1000, help="validation images (half per class)")
    ap.add_argument("--split", action="store_true",
                    help="the tutorial's validation_split=0.2 of the training images instead")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=C.DATA_DIR)
    ap.add_argument("--catdog-python", default=None)
    ap.add_argument("--tf-python", default=None)
    ap.add_argument("--json", default=None, help="default: benchmarks/classification_tutorial.json "
                    "(full runs) or the run's work folder (reduced runs)")
    ap.add_argument("--report-only", action="store_true")
    # the child's own arguments
    ap.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--train-dir", help=argparse.SUPPRESS)
    ap.add_argument("--val-dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.epoch_list = [int(e) for e in a.epochs.split(",")]
    if a.child:
        return child(a)
    if a.report_only:
        doc = json.load(open(a.json or JSON))
        print("\n".join(render(doc)))
        if (a.json or JSON) == JSON:
            rerender_results()
        return
    sides = [s.strip() for s in a.sides.split(",") if s.strip()]
    if any(s not in SIDES for s in sides):
        ap.error("sides: choose from %s" % ", ".join(SIDES))
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    full = a.images == 2000 and a.val_images == 1000 and a.epoch_list == [10, 15]
    workdir = os.path.join(HERE, "_work", "tutorial-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(workdir, exist_ok=True)
    json_path = a.json or (JSON if full else os.path.join(workdir, "classification_tutorial.json"))
    train_dir, val_dir = os.path.join(a.data, "train"), os.path.join(a.data, "validation")
    if a.images != count(train_dir):
        train_dir = subset(train_dir, a.images // 2, os.path.join(workdir, "train"))
    if a.val_images != count(val_dir):
        val_dir = subset(val_dir, a.val_images // 2, os.path.join(workdir, "validation"))
    import flops
    import run
    doc = {"meta": {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "commit": run.git_commit(), "machine": flops.cpu_info(), "threads": a.threads,
                    "epochs": a.epoch_list, "seeds": seeds, "split": a.split,
                    "images": a.images, "val_images": a.val_images, "full": full,
                    "loadavg_start": run.loadavg(),
                    "command": "python benchmarks/classification_tutorial.py " + " ".join(sys.argv[1:]),
                    "workdir": os.path.relpath(workdir, ROOT)},
           "sides": sides, "runs": {s: [] for s in sides}, "unavailable": {}}
    t_all = time.perf_counter()
    for k, seed in enumerate(seeds):
        for side in sides[k % len(sides):] + sides[:k % len(sides)]:  # rotate the order
            if side in doc["unavailable"]:
                continue
            rec, err = run_one(side, seed, a, workdir, train_dir, val_dir)
            if rec is None and "not found" in err:
                doc["unavailable"][side] = err
            elif rec is None:
                doc["runs"][side].append({"seed": seed, "error": err})
            else:
                doc["runs"][side].append(rec)
            print("[tutorial] %-10s seed %d: %s" % (side, seed, err or "%.0f s, val. acc. %.4f / %.4f" % (
                rec["wall_s"], rec["model1_val_accuracy"], rec["model2_val_accuracy"])), flush=True)
            doc["meta"]["total_s"] = time.perf_counter() - t_all
            doc["meta"]["loadavg_end"] = run.loadavg()
            with open(json_path + ".tmp", "w") as f:
                json.dump(doc, f, indent=1)
            os.replace(json_path + ".tmp", json_path)
    print("\n".join(render(doc)))
    print("[tutorial] wrote %s" % os.path.relpath(json_path, ROOT))
    if json_path == JSON:
        rerender_results()


def rerender_results():
    res = os.path.join(HERE, "results.json")
    if os.path.exists(res):
        import run
        run.write_report(json.load(open(res)), os.path.join(HERE, "RESULTS.md"))
        print("[tutorial] re-rendered RESULTS.md")


# --------------------------------------------------------------------------- the report
def ok_runs(doc, side):
    return [r for r in doc["runs"].get(side, []) if "error" not in r]


def render(doc):
    """The Markdown section (a list of lines)."""
    import stats

    meta, sides = doc["meta"], doc["sides"]
    m = meta["machine"]
    e1, e2 = meta["epochs"]
    L = ["## The image classification tutorial side by side (%d seeds, %d + %d epochs; "
         "`benchmarks/classification_tutorial.py`)\n" % (len(meta["seeds"]), e1, e2)]
    if not meta["full"]:
        L.append("> **REDUCED RUN** (%d training images, %d validation, %d + %d epochs): proves it "
                 "runs, measures nothing.\n" % (meta["images"], meta["val_images"], e1, e2))
    val = ("`validation_split=0.2` of the %d training images (seed 123)" % meta["images"]) if meta["split"] \
        else "%d training images (train/), %d validation images (validation/)" % (meta["images"], meta["val_images"])
    L.append("- date: %s; commit `%s`; %s, %s logical CPUs; %d threads each side; load average "
             "%.2f at the start, %.2f at the end; %.0f min in all"
             % (meta["date"], meta["commit"], m["model"], m["logical_cpus"], meta["threads"],
                (meta.get("loadavg_start") or [0])[0], (meta.get("loadavg_end") or [0])[0],
                meta.get("total_s", 0) / 60))
    L.append("- each run: the tutorial's code (tensorflow/docs classification.ipynb) in a fresh "
             "process, the same function on both sides, 180x180, batch 32, %s; "
             "set_random_seed(S) and the datasets' shuffle seed S" % val)
    L.append("- wall = building the datasets to the end of the second fit (not the import); "
             "training = the two fits minus their validation passes")
    L.append("- command: `%s`" % meta["command"])
    for note in meta.get("notes", []):
        L.append("- %s" % note)
    for side, why in doc.get("unavailable", {}).items():
        L.append("- %s: **not available here: %s**" % (NAMES[side], why))
    L.append("")
    L.append("| side | seed | wall, s | model 1 fit, s | model 2 fit, s | training, s | validation, s | "
             "peak RSS, MB | model 1 train / val. acc. | model 2 train / val. acc. |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for side in sides:
        for r in doc["runs"].get(side, []):
            if "error" in r:
                L.append("| %s | %s | failed: %s | | | | | | | |" % (NAMES[side], r["seed"], r["error"][:80]))
                continue
            L.append("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.1f | %.0f | %.4f / %.4f | %.4f / %.4f |" % (
                NAMES[side], r["seed"], r["wall_s"], r["fit1_s"], r["fit2_s"], r["train_s"],
                r["validation_s"], r["peak_rss_mb"], r["model1_accuracy"], r["model1_val_accuracy"],
                r["model2_accuracy"], r["model2_val_accuracy"]))
    L.append("")
    keys = ["wall_s", "train_s", "peak_rss_mb"] + [k for k, _ in ACCURACIES]
    summ = {s: {k: stats.summary([r[k] for r in ok_runs(doc, s)]) for k in keys}
            for s in sides if ok_runs(doc, s)}
    if not summ:
        return L
    L.append("Per side, mean ± sample standard deviation over the seeds [median]:\n")
    L.append("| side | runs | wall, s | training, s | peak RSS, MB | %s |" % " | ".join(t + ", %" for _, t in ACCURACIES))
    L.append("|---|---|---|---|---|" + "---|" * len(ACCURACIES))
    for s, d in summ.items():
        L.append("| %s | %d | %.0f ± %.0f [%.0f] | %.0f ± %.0f | %.0f | %s |" % (
            NAMES[s], d["wall_s"]["n"], d["wall_s"]["mean"], d["wall_s"]["sd"], d["wall_s"]["median"],
            d["train_s"]["mean"], d["train_s"]["sd"], d["peak_rss_mb"]["median"],
            " | ".join("%.2f ± %.2f" % (100 * d[k]["mean"], 100 * d[k]["sd"]) for k, _ in ACCURACIES)))
    L.append("")
    if REF in summ and "catdog" in summ:
        ref, cd = summ[REF], summ["catdog"]
        ratio = cd["wall_s"]["median"] / ref["wall_s"]["median"]
        mark = (lambda ok: "") if not meta["full"] else (lambda ok: "✓" if ok else "✗")
        L.append("Targets (issue 22, section 4):\n")
        L.append("- catdog wall time ≤ %.1f× TensorFlow's (medians): %.2f× %s" % (TARGET_RATIO, ratio, mark(ratio <= TARGET_RATIO)))
        for k, t in ACCURACIES:
            lo, hi = ref[k]["min"], ref[k]["max"]
            ok = lo <= cd[k]["mean"] <= hi
            line = "- catdog mean %s %.2f%% within TensorFlow's seeds [%.2f, %.2f]%%: %s" % (
                t, 100 * cd[k]["mean"], 100 * lo, 100 * hi, mark(ok) or ("yes" if ok else "no"))
            if cd[k]["n"] > 1 and ref[k]["n"] > 1:
                c = stats.compare([r[k] for r in ok_runs(doc, "catdog")], [r[k] for r in ok_runs(doc, REF)])
                line += " (difference %+.2f points, Welch 95%% [%+.2f, %+.2f], permutation p = %.2f)" % (
                    100 * c["diff"], 100 * c["ci95"][0], 100 * c["ci95"][1], c["p_permutation"])
            L.append(line)
        L.append("")
    return L


if __name__ == "__main__":
    main()
