#!/usr/bin/env python3
"""The full lab side by side: catdog fp32, catdog bf16 and TensorFlow/Keras over the same seeds.

    python benchmarks/full_lab.py [--seeds 1,2,3,4,5] [--sides catdog,catdog-bf16,tensorflow]
                                  [--lab-epochs 10,10] [--threads 2] [--quick]
    python benchmarks/full_lab.py --report-only      # re-render from full_lab.json

Each run is case 4 of the side's bench script (bench_catdog.py / bench_tensorflow.py: the same
lab code on both sides, 10 epochs of transfer learning + 10 of fine-tuning from layer 100,
evaluate on the test split) in a fresh process, with `--seed S`: the framework's
set_random_seed(S) and the datasets' shuffle seed S, so at a seed both sides train on the same
images in the same validation / test split, from the same ImageNet weights. Seeds run one
after another, every side within a seed, the order of the sides rotating from seed to seed so
that a slow phase of the machine does not fall on one side only.

Writes benchmarks/full_lab.json after every run (a stopped session keeps what finished) and
the section "The full lab side by side" of RESULTS.md (run.py's report includes it).
The statistics are in stats.py.
"""
import argparse
import datetime
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import flops  # noqa: E402
import run  # noqa: E402
import stats  # noqa: E402

JSON = os.path.join(HERE, "full_lab.json")
SIDES = ["catdog", "catdog-bf16", "tensorflow"]
REF = "tensorflow"
# issue 15, section 3: medians over the seeds; accuracies' means within 0.5 point of TF's
TARGET_WALL_S = {"catdog": 140.0, "catdog-bf16": 80.0}
TARGET_RATIO = 0.30
TARGET_ACC_POINTS = 0.5
TARGET_BF16_WALL = 0.6  # issue 24: bf16's full lab against fp32's, same seed, same machine
ACCURACIES = [("transfer_val_accuracy", "validation accuracy after transfer learning"),
              ("final_val_accuracy", "validation accuracy after fine-tuning"),
              ("test_accuracy", "test accuracy")]
TIMES = [("wall_s", "wall"), ("train_s", "training"), ("validation_s", "validation"),
         ("evaluate_s", "evaluate"), ("setup_s", "set-up")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--lab-epochs", default="10,10")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="1+1 epochs on a few batches: proves it runs")
    ap.add_argument("--catdog-python", default=None)
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--json", default=JSON)
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    if a.report_only:
        doc = json.load(open(a.json))
        print("\n".join(render(doc)))
        rerender_results()
        return
    sides = [s.strip() for s in a.sides.split(",") if s.strip()]
    bad = [s for s in sides if s not in SIDES]
    if bad:
        ap.error("unknown side(s) %s (choose from %s)" % (bad, ", ".join(SIDES)))
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    workdir = os.path.join(HERE, "_work", "full_lab-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(workdir, exist_ok=True)
    doc = {"meta": {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "commit": run.git_commit(), "machine": flops.cpu_info(),
                    "threads": a.threads, "lab_epochs": a.lab_epochs, "seeds": seeds,
                    "quick": a.quick, "loadavg_start": run.loadavg(),
                    "command": "python benchmarks/full_lab.py " + " ".join(sys.argv[1:]),
                    "workdir": os.path.relpath(workdir, ROOT)},
           "sides": sides, "runs": {s: [] for s in sides}, "unavailable": {}}
    child_args = argparse.Namespace(threads=a.threads, repeats=1, lab_epochs=a.lab_epochs,
                                    quick=a.quick, catdog_python=a.catdog_python, seed=None)
    t_all = time.perf_counter()
    for k, seed in enumerate(seeds):
        order = sides[k % len(sides):] + sides[:k % len(sides)]
        for side in order:
            if side in doc["unavailable"]:
                continue
            child_args.seed = seed
            res, info = run.run_child(side, "4", child_args, workdir, "seed%d" % seed, a.timeout)
            if not res.get("available", True):
                doc["unavailable"][side] = res.get("reason")
                print("[full_lab] %s not available: %s" % (side, res.get("reason")), flush=True)
                continue
            rec = res.get("cases", {}).get("4")
            if rec is None:
                err = res.get("errors", {}).get("4", "no result")
                doc["runs"][side].append({"seed": seed, "error": err, "log": info.get("log")})
                print("[full_lab] %s seed %d failed: %s" % (side, seed, err), flush=True)
            else:
                rec.update(process_wall_s=info["wall_s"], process_maxrss_mb=info["maxrss_mb"],
                           log=info.get("log"), versions=res.get("versions", {}))
                doc["runs"][side].append(rec)
                print("[full_lab] %-11s seed %d: %.0f s, val %.4f / %.4f, test %.4f" % (
                    side, seed, rec["wall_s"], rec["transfer_val_accuracy"],
                    rec["final_val_accuracy"], rec["test_accuracy"]), flush=True)
            doc["meta"]["total_s"] = time.perf_counter() - t_all
            doc["meta"]["loadavg_end"] = run.loadavg()
            with open(a.json + ".tmp", "w") as f:
                json.dump(doc, f, indent=1, default=float)
            os.replace(a.json + ".tmp", a.json)
    print("\n".join(render(doc)))
    if a.json == JSON and not a.quick:
        rerender_results()


def rerender_results():
    """RESULTS.md carries this section: re-render it from results.json when there is one."""
    res = os.path.join(HERE, "results.json")
    if os.path.exists(res):
        run.write_report(json.load(open(res)), os.path.join(HERE, "RESULTS.md"))
        print("[full_lab] re-rendered RESULTS.md")


def ok_runs(doc, side):
    return [r for r in doc["runs"].get(side, []) if "error" not in r]


def _pm(s, nd=1, scale=1.0):
    return "%.*f ± %.*f" % (nd, s["mean"] * scale, nd, s["sd"] * scale)


def render(doc):
    """The Markdown section (a list of lines)."""
    meta, sides = doc["meta"], doc["sides"]

    def mark(ok):  # no ✓/✗ in --quick mode, as run.py
        return run.check(ok, on=not meta["quick"]).strip()
    m = meta["machine"]
    e = meta["lab_epochs"].split(",")
    ran = [r["epochs"] for s in sides for r in ok_runs(doc, s)]
    if ran:  # what the runs did (--quick runs 1 + 1)
        e = ran[0]
    L = ["## The full lab side by side (%s seeds, %s + %s epochs; `benchmarks/full_lab.py`)\n"
         % (len(meta["seeds"]), e[0], e[1])]
    if meta["quick"]:
        L.append("> **QUICK MODE**: 1+1 epochs on a few batches; not measurements.\n")
    L.append("- date: %s; commit `%s`; %s, %s logical CPUs; %d threads each side; load average "
             "%.2f at the start, %.2f at the end; %.0f min in all"
             % (meta["date"], meta["commit"], m["model"], m["logical_cpus"], meta["threads"],
                (meta.get("loadavg_start") or [0])[0], (meta.get("loadavg_end") or [0])[0],
                meta.get("total_s", 0) / 60))
    L.append("- each run: case 4 of the side's bench script in a fresh process, `--seed S` "
             "(set_random_seed and the datasets' shuffle seed): at a seed every side trains on "
             "the same images, split the same way into validation (808) and test (192), from "
             "the same ImageNet weights (`1.0_224` no-top file of ../shared)")
    L.append("- wall = the lab's code from building the datasets to the end of evaluate "
             "(not the interpreter's start or the import); training = the two fits minus their "
             "validation passes (timed by on_test_begin / on_test_end callbacks on both sides)")
    L.append("- command: `%s`" % meta["command"])
    for side, why in doc.get("unavailable", {}).items():
        L.append("- %s: **not available here: %s**" % (run.NAMES[side], why))
    L.append("")
    L.append("| side | seed | wall, s | training, s | validation, s | evaluate, s | peak RSS, MB | "
             "val. acc. after transfer | val. acc. after fine-tuning | test acc. |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for side in sides:
        for r in doc["runs"].get(side, []):
            if "error" in r:
                L.append("| %s | %s | failed: %s | | | | | | | |" % (run.NAMES[side], r["seed"], r["error"][:80]))
                continue
            L.append("| %s | %d | %.0f | %.0f | %.1f | %.2f | %.0f | %.4f | %.4f | %.4f |" % (
                run.NAMES[side], r["seed"], r["wall_s"], r["train_s"], r["validation_s"],
                r["evaluate_s"], r["peak_rss_mb"], r["transfer_val_accuracy"],
                r["final_val_accuracy"], r["test_accuracy"]))
    L.append("")
    summ = {s: {k: stats.summary([r[k] for r in ok_runs(doc, s)]) for k, _ in TIMES + ACCURACIES
                + [("peak_rss_mb", "")]} for s in sides if ok_runs(doc, s)}
    if not summ:
        return L
    L.append("Per side, mean ± sample standard deviation over the seeds (median in brackets):\n")
    L.append("| side | runs | wall, s | training, s | validation, s | evaluate, s | peak RSS, MB | "
             "val. acc. after transfer, % | val. acc. after fine-tuning, % | test acc., % |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for s, d in summ.items():
        L.append("| %s | %d | %s [%.0f] | %s | %s | %s | %s [%.0f] | %s | %s | %s |" % (
            run.NAMES[s], d["wall_s"]["n"], _pm(d["wall_s"], 0), d["wall_s"]["median"],
            _pm(d["train_s"], 0), _pm(d["validation_s"], 1), _pm(d["evaluate_s"], 2),
            _pm(d["peak_rss_mb"], 0), d["peak_rss_mb"]["median"],
            _pm(d["transfer_val_accuracy"], 2, 100),
            _pm(d["final_val_accuracy"], 2, 100), _pm(d["test_accuracy"], 2, 100)))
    L.append("")
    if REF in summ:
        ref = summ[REF]
        L.append("Against TensorFlow/Keras: the wall-time ratio of the medians, and each accuracy's "
                 "difference of means (catdog − TensorFlow, points) with its Welch 95% interval "
                 "and the exact two-sided permutation test's p (stats.py). \"Same\" = p ≥ 0.05 and "
                 "the interval holds 0: no difference that these seeds can show; the interval's "
                 "width is how large a difference they could have shown.\n")
        L.append("| side | wall / TF (medians) | peak RSS / TF | %s |" % " | ".join(t for _, t in ACCURACIES))
        L.append("|---|---|---|" + "---|" * len(ACCURACIES))
        for s in [s for s in summ if s != REF]:
            cells = []
            for k, _ in ACCURACIES:
                c = stats.compare([r[k] for r in ok_runs(doc, s)], [r[k] for r in ok_runs(doc, REF)])
                cells.append("%+.2f [%+.2f, %+.2f], p = %.2f: %s" % (
                    100 * c["diff"], 100 * c["ci95"][0], 100 * c["ci95"][1], c["p_permutation"],
                    "same" if c["indistinguishable"] else "**differs**"))
            L.append("| %s | %.2f× | %.2f× | %s |" % (
                run.NAMES[s], summ[s]["wall_s"]["median"] / ref["wall_s"]["median"],
                summ[s]["peak_rss_mb"]["median"] / ref["peak_rss_mb"]["median"], " | ".join(cells)))
        L.append("")
    if "catdog" in summ and "catdog-bf16" in summ:
        L.extend(bf16_against_fp32(doc, summ, mark))
    L.append("Targets (issue 15, section 3; medians over the seeds):\n")
    for s, limit in TARGET_WALL_S.items():
        if s in summ:
            w = summ[s]["wall_s"]["median"]
            L.append("- %s full lab ≤ %.0f s: %.0f s %s" % (run.NAMES[s], limit, w, mark(w <= limit)))
        elif s in doc.get("unavailable", {}):
            L.append("- %s full lab ≤ %.0f s: not measured here (%s)" % (run.NAMES[s], limit, "not available"))
    if REF in summ:
        for s in [s for s in summ if s != REF]:
            r = summ[s]["wall_s"]["median"] / summ[REF]["wall_s"]["median"]
            L.append("- %s ≤ %.2f× TensorFlow's wall time: %.2f× %s" % (run.NAMES[s], TARGET_RATIO, r, mark(r <= TARGET_RATIO)))
            for k, t in ACCURACIES:
                d = 100 * (summ[s][k]["mean"] - summ[REF][k]["mean"])
                L.append("- %s mean %s within %.1f point of TensorFlow's: %+.2f %s"
                         % (run.NAMES[s], t, TARGET_ACC_POINTS, d, mark(abs(d) <= TARGET_ACC_POINTS)))
    L.append("")
    return L


def bf16_against_fp32(doc, summ, mark):
    """Issue 24's targets: bf16's wall time against fp32's at the same seeds (median of the
    per-seed ratios) and each accuracy's difference of means (bf16 - fp32, points, Welch 95%
    interval, permutation p)."""
    fp32 = {r["seed"]: r for r in ok_runs(doc, "catdog")}
    pairs = [(r, fp32[r["seed"]]) for r in ok_runs(doc, "catdog-bf16") if r["seed"] in fp32]
    if not pairs:
        return []
    ratios = sorted(b["wall_s"] / f["wall_s"] for b, f in pairs)
    L = ["catdog bf16 against catdog fp32 (issue 24; the same seeds, each pair run back to back):\n",
         "| wall bf16 / fp32 per seed (median) | %s |" % " | ".join(t for _, t in ACCURACIES),
         "|---|" + "---|" * len(ACCURACIES)]
    cells, checks = [], []
    for k, t in ACCURACIES:
        c = stats.compare([b[k] for b, _ in pairs], [f[k] for _, f in pairs])
        cells.append("%+.2f [%+.2f, %+.2f], p = %.2f" % (100 * c["diff"], 100 * c["ci95"][0],
                                                         100 * c["ci95"][1], c["p_permutation"]))
        checks.append("- catdog bf16 mean %s within %.1f point of fp32's: %+.2f %s" % (
            t, TARGET_ACC_POINTS, 100 * c["diff"], mark(abs(100 * c["diff"]) <= TARGET_ACC_POINTS)))
    med = ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1:][:2]) / 2
    L.append("| %s (%.2f×) | %s |" % (", ".join("%.2f×" % r for r in ratios), med, " | ".join(cells)))
    L.append("")
    L.append("- catdog bf16 full lab ≤ %.1f× fp32's wall time: %.2f× %s" % (
        TARGET_BF16_WALL, med, mark(med <= TARGET_BF16_WALL)))
    return L + checks + [""]


if __name__ == "__main__":
    main()
