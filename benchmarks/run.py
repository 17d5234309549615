#!/usr/bin/env python3
"""catdog vs TensorFlow/Keras vs PyTorch, side by side: the one command.

    python benchmarks/run.py [--threads 2] [--repeats N] [--quick] [--cases 1,2,3,4,5]
                             [--frameworks catdog,tensorflow,pytorch,pytorch-compile,onnxruntime,openvino]
                             [--bf16] [--no-parity] [--rounds N]
    (pytorch-compile = torch.compile/inductor, cases 1-3; onnxruntime = ONNX Runtime on the
    network exported from PyTorch, case 1; openvino = OpenVINO on that same ONNX file, case 1,
    fp32, and bf16 too with --bf16; e.g. --frameworks catdog,onnxruntime,openvino --cases 1)

Each framework runs in its own child process (its own interpreter: catdog from this python,
TensorFlow from benchmarks/.venv-tf, PyTorch eager and compiled from benchmarks/.venv-torch,
ONNX Runtime from benchmarks/.venv-ort, OpenVINO from benchmarks/.venv-ov; see setup.sh):
one process for cases 1-3, one fresh process for case 4 (so its peak RSS is the lab's), and
one fresh process per repeat of case 5. Frameworks are interleaved case group by case group
so that all sides see the same machine state; `--rounds N` runs cases 1-3 N times, the sides'
order rotating each round, and reports each side's median over the rounds next to the
per-round catdog/side ratios. Writes benchmarks/results.json and
benchmarks/RESULTS.md. A side that cannot run is reported as "not available: <reason>".
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import flops  # noqa: E402

NAMES = {"catdog": "catdog", "catdog-bf16": "catdog bf16", "tensorflow": "TensorFlow/Keras",
         "pytorch": "PyTorch", "pytorch-compile": "PyTorch compiled", "onnxruntime": "ONNX Runtime",
         "openvino": "OpenVINO", "openvino-bf16": "OpenVINO bf16"}
BASE_REFS = ["tensorflow", "pytorch"]  # a run with both of these is recorded in runs.jsonl
REFS = BASE_REFS + ["pytorch-compile", "onnxruntime", "openvino", "openvino-bf16"]
CASES_OF = {"pytorch-compile": {1, 2, 3}, "onnxruntime": {1}, "openvino": {1},
            "openvino-bf16": {1}}  # sides that run only some cases
VENV = {"tensorflow": ".venv-tf", "pytorch": ".venv-torch", "pytorch-compile": ".venv-torch",
        "onnxruntime": ".venv-ort", "openvino": ".venv-ov", "openvino-bf16": ".venv-ov"}


def runs_case(fw, case):
    return int(case) in CASES_OF.get(fw, {1, 2, 3, 4, 5})


def interpreter(fw, args):
    if fw.startswith("catdog"):
        return args.catdog_python or os.environ.get("CATDOG_PYTHON") or sys.executable
    return os.path.join(HERE, VENV[fw], "bin", "python")


def script(fw):
    if fw.startswith("catdog"):
        return os.path.join(HERE, "bench_catdog.py")
    if fw.startswith("openvino"):
        return os.path.join(HERE, "bench_openvino.py")
    return os.path.join(HERE, "bench_%s.py" % ("pytorch" if fw == "pytorch-compile" else fw))


def child_env(threads):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
              "CATDOG_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    env["TF_NUM_INTEROP_THREADS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONHASHSEED"] = "0"
    # The catdog child must import the installed catdog, never the tf.keras shim.
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                        if p and "catdog_shim" not in p)
    return env


def run_child(fw, cases, args, workdir, tag, timeout):
    """Run one child; returns (json dict or None, info dict with rc, wall_s, maxrss_mb, log)."""
    py = interpreter(fw, args)
    out = os.path.join(workdir, "%s_%s.json" % (fw, tag))
    log = os.path.join(workdir, "%s_%s.log" % (fw, tag))
    info = {"cmd": None, "log": os.path.relpath(log, ROOT)}
    if not os.path.exists(py):
        info["rc"] = None
        return {"available": False, "reason": "%s not found: run `bash benchmarks/setup.sh`" % py}, info
    cmd = [py, script(fw), "--cases", cases, "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--json", out, "--lab-epochs", args.lab_epochs]
    if args.quick:
        cmd.append("--quick")
    if getattr(args, "seed", None) is not None:
        cmd += ["--seed", str(args.seed)]
    if fw in ("catdog-bf16", "openvino-bf16"):
        cmd += ["--precision", "bf16"]
    if fw == "pytorch-compile":
        cmd += ["--mode", "compile"]
    if fw == "onnxruntime" or fw.startswith("openvino"):
        cmd += ["--torch-python", interpreter("pytorch", args)]
    net = getattr(args, "net", "mobilenetv2")
    if net != "mobilenetv2":  # issue 21's other bases (networks.py): cases 1-3
        cmd += ["--net", net]
        if fw == "onnxruntime" or fw.startswith("openvino"):  # catdog's exporter writes the file
            cmd += ["--catdog-python", interpreter("catdog", args)]
    if fw.startswith("openvino") and getattr(args, "openvino_sweep", False) and tag in ("c123", "c123_r0"):
        cmd.append("--ov-sweep")
    info["cmd"] = " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd)
    if os.path.exists(out):
        os.remove(out)
    print("[run] %-12s cases %-5s %s" % (fw, cases, tag), flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as lf:
        p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=child_env(args.threads),
                             cwd=HERE)
        deadline = time.time() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                info["timeout"] = True
                break
            time.sleep(0.05)
    p.returncode = os.waitstatus_to_exitcode(status)
    info.update(rc=p.returncode, wall_s=time.perf_counter() - t0, maxrss_mb=ru.ru_maxrss / 1024.0)
    res = None
    if os.path.exists(out):
        with open(out) as f:
            res = json.load(f)
    if res is None or (p.returncode not in (0, 3) and not res.get("cases")):
        tail = open(log, errors="replace").read().strip().splitlines()[-3:]
        why = "timed out after %ds" % timeout if info.get("timeout") else "exit code %s" % p.returncode
        err = "%s: %s" % (why, " | ".join(tail))
        if res is None:
            res = {"available": True, "cases": {}, "errors": {c: err for c in cases.split(",")}}
        else:
            res.setdefault("errors", {}).update({c: err for c in cases.split(",") if c not in res["cases"]})
    return res, info


def merge(R, fw, res, info):
    r = R[fw]
    r["processes"].append(info)
    if res.get("executable"):
        r["executable"] = res["executable"]
    if not res.get("available", True):
        r["available"] = False
        r["reason"] = res.get("reason")
        return
    for k in ("versions", "executable", "python"):
        if res.get(k):
            r[k] = res[k]
    r["errors"].update(res.get("errors", {}))
    for c, v in res.get("cases", {}).items():
        if c == "4":
            v["parent_maxrss_mb"] = info.get("maxrss_mb")
            v["process_wall_s"] = info.get("wall_s")
        r["cases"][c] = v
    for k in ("parity", "export"):
        if k in res:
            r[k] = res[k]


def rotations(fws, rounds, first=0):
    """(round, side) for `rounds` rounds over the sides fws, each round starting one side
    later (round 0 at fws[first]), so that a slow phase of the host falls on every side."""
    for i in range(rounds):
        s = (first + i) % len(fws)
        for f in fws[s:] + fws[:s]:
            yield i, f


def combine_rounds(r, rounds):
    """Cases 1-3 measured in several rounds: each case's record becomes the median over the
    rounds (images/s, ms per step, GFLOP/s, batch-1 latency), keeping every round's values."""
    med = statistics.median
    for c in ("1", "2", "3"):
        recs = [x[c] for x in rounds if c in x]
        if len(recs) < 2:
            continue
        v = {}
        for x in recs:  # the last round's fields, and any a round alone has (the sweep)
            v.update(x)
        v["rounds"] = [{"images_per_s": x.get("images_per_s"),
                        "latency_ms": (x.get("batch1") or {}).get("latency_ms")} for x in recs]
        for k in ("images_per_s", "ms_per_step", "gflop_per_s"):
            if all(k in x for x in recs):
                v[k] = med(x[k] for x in recs)
        if all("batch1" in x for x in recs):
            v["batch1"] = dict(recs[-1]["batch1"], latency_ms=med(x["batch1"]["latency_ms"] for x in recs))
        r["cases"][c] = v


def rounds_lines(R, fws):
    """Per-round catdog/side ratios of case 1 (sides run in turn within a round)."""
    L = []
    for cf in [f for f in fws if f.startswith("catdog")]:
        a = get(R, cf, 1, "rounds")
        if not a:
            continue
        for rf in [f for f in fws if f in REFS]:
            b = get(R, rf, 1, "rounds")
            if not b or len(b) != len(a):
                continue
            thr = ", ".join("%.2f×" % (x["images_per_s"] / y["images_per_s"]) for x, y in zip(a, b)
                            if x["images_per_s"] and y["images_per_s"])
            lat = ", ".join("%.2f×" % (x["latency_ms"] / y["latency_ms"]) for x, y in zip(a, b)
                            if x["latency_ms"] and y["latency_ms"])
            L.append("- %s / %s per round: batch 32 images/s %s; batch-1 latency %s"
                     % (NAMES[cf], NAMES[rf], thr, lat))
    if L:
        L = ["Case 1 round by round (`--rounds %d`: the tables show each side's median over the "
             "rounds):\n" % len(get(R, [f for f in fws if f.startswith("catdog")][0], 1, "rounds") or [])] + L + [""]
    return L


def loadavg():
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


def git_commit():
    try:
        h = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return h + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def parity(args, workdir, R):
    """Keras (dumps input/weights/outputs) vs the torch.nn network on the same weights."""
    npz = os.path.join(workdir, "keras_reference.npz")
    env = child_env(args.threads)
    py_tf, py_pt = interpreter("tensorflow", args), interpreter("pytorch", args)
    if not (os.path.exists(py_tf) and os.path.exists(py_pt)):
        return {"skipped": "needs both reference venvs"}
    a = subprocess.run([py_tf, script("tensorflow"), "--dump-reference", npz], env=env, cwd=HERE,
                       capture_output=True, text=True)
    if a.returncode or not os.path.exists(npz):
        return {"error": "keras dump failed: " + a.stderr.strip()[-300:]}
    out = os.path.join(workdir, "parity.json")
    b = subprocess.run([py_pt, script("pytorch"), "--check-parity", npz, "--json", out], env=env,
                       cwd=HERE, capture_output=True, text=True)
    if b.returncode or not os.path.exists(out):
        return {"error": "torch check failed: " + b.stderr.strip()[-300:]}
    return json.load(open(out)).get("parity", {})


# ------------------------------------------------------------------ report


def fmt(v, nd=1):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return ("%%.%df" % nd) % v


def ratio(a, b, nd=2):
    if a is None or b is None or not b:
        return "—"
    return "%.*f×" % (nd, a / b)


def get(R, fw, case, *keys):
    v = R.get(fw, {}).get("cases", {}).get(str(case))
    for k in keys:
        if v is None:
            return None
        v = v.get(k)
    return v


def cell(R, fw, case, *keys, nd=1):
    r = R.get(fw)
    if r is None:
        return "—"
    if not r["available"]:
        return "n/a"
    v = get(R, fw, case, *keys)
    if v is None:
        return "error" if str(case) in r["errors"] else "—"
    return fmt(v, nd)


_MARKS = {"on": True}


def check(ok, on=None):
    """✓/✗ against a target; suppressed in --quick mode, whose numbers measure nothing
    (`on`: this report's own mode, else RESULTS.md's)."""
    if ok is None or not (_MARKS["on"] if on is None else on):
        return ""
    return " ✓" if ok else " ✗"


# ---- the runs so far: one line per full run in runs.jsonl, medians across them ------------

RATIO_CASES = [  # (label, case, keys, reference, target, lower_is_better)
    ("1 inference vs TF", 1, ("images_per_s",), "tensorflow", 1.5, False),
    ("1 inference vs torch", 1, ("images_per_s",), "pytorch", 1.5, False),
    ("1 batch-1 latency vs TF", 1, ("batch1", "latency_ms"), "tensorflow", 1.0, True),
    ("1 batch-1 latency vs torch", 1, ("batch1", "latency_ms"), "pytorch", 1.0, True),
    ("2 transfer step vs TF", 2, ("images_per_s",), "tensorflow", 2.0, False),
    ("2 transfer step vs torch", 2, ("images_per_s",), "pytorch", 1.5, False),
    ("3 fine-tuning step vs TF", 3, ("images_per_s",), "tensorflow", 2.0, False),
    ("3 fine-tuning step vs torch", 3, ("images_per_s",), "pytorch", 1.5, False),
    ("1 inference vs ORT", 1, ("images_per_s",), "onnxruntime", {"catdog": 1.0, "catdog-bf16": 1.8}, False),
    ("1 batch-1 latency vs ORT", 1, ("batch1", "latency_ms"), "onnxruntime", {"catdog": 1 / 1.3}, True),
    ("1 inference vs OpenVINO", 1, ("images_per_s",), "openvino", {"catdog": 1.2}, False),
    ("1 batch-1 latency vs OpenVINO", 1, ("batch1", "latency_ms"), "openvino", {"catdog": 1.0}, True),
    ("1 inference vs OpenVINO bf16", 1, ("images_per_s",), "openvino-bf16", {"catdog-bf16": 1.2}, False),
    ("1 batch-1 latency vs OpenVINO bf16", 1, ("batch1", "latency_ms"), "openvino-bf16",
     {"catdog-bf16": 1 / 1.2}, True),
    ("2 transfer step vs compiled torch", 2, ("images_per_s",), "pytorch-compile", 1.5, False),
    ("3 fine-tuning step vs compiled torch", 3, ("images_per_s",), "pytorch-compile", 1.5, False),
    ("4 lab wall time vs TF", 4, ("wall_s",), "tensorflow", 0.5, True),
    ("4 lab peak RSS vs TF", 4, ("peak_rss_mb",), "tensorflow", 0.5, True),
]


def run_record(doc):
    """The ratios of one run, as a line of runs.jsonl."""
    R = doc["frameworks"]
    rec = {"date": doc["meta"]["date"], "commit": doc["meta"]["commit"][:7], "ratios": {}}
    for f in [x for x in doc["frameworks_order"] if x.startswith("catdog")]:
        for label, case, keys, ref, _, _ in RATIO_CASES:
            a, b = get(R, f, case, *keys), get(R, ref, case, *keys)
            if a and b:
                rec["ratios"].setdefault(f, {})[label] = a / b
    return rec


# Runs from this date on measured the current engine; earlier ones (older engines) stay in
# runs.jsonl and in the report's second table, but the medians count only these. Move it
# forward when the engine changes enough that old runs mislead.
ENGINE_SINCE = "2026-11-28 04:10"


def tfmt(t):
    """A target: one decimal (1.5, 2.0), two where one would round it (1/1.3 = 0.77)."""
    return "%.1f" % t if abs(t * 10 - round(t * 10)) < 1e-9 else "%.2f" % t


def runs_table(rows, f, with_median):
    L = ["| target | " + " | ".join("%s `%s`" % (r["date"][5:16], r["commit"]) for r in rows)
         + (" | median |" if with_median else " |")]
    L.append("|---|" + "---|" * (len(rows) + (1 if with_median else 0)))
    for label, _, _, _, target, lower in RATIO_CASES:
        vals = [r["ratios"][f].get(label) for r in rows]
        have = [v for v in vals if v is not None]
        if isinstance(target, dict):
            target = target.get(f)
        if not have or target is None:
            continue
        cells = " | ".join("%.2f×" % v if v is not None else "—" for v in vals)
        if with_median:
            med = statistics.median(have)
            ok = med <= target if lower else med >= target
            L.append("| %s (%s %s×) | %s | %.2f×%s |" % (
                label, "≤" if lower else "≥", tfmt(target), cells, med, check(ok)))
        else:
            L.append("| %s (%s %s×) | %s |" % (label, "≤" if lower else "≥", tfmt(target), cells))
    return L + [""]


def runs_section(records):
    """Every recorded run's ratio per target, and the median across the current engine's runs
    (the machine is noisy: phases of minutes slow one framework's window and not the next)."""
    L = ["## Across runs (benchmarks/runs.jsonl; the medians are what the targets are judged on)\n",
         "Runs since %s UTC (the current engine); earlier engines' runs below, not in the "
         "medians.\n" % ENGINE_SINCE]
    for f in ("catdog", "catdog-bf16"):
        rows = [r for r in records if f in r["ratios"] and r["date"] >= ENGINE_SINCE]
        if rows:
            L.append("%s, one column per run (date, commit):\n" % NAMES[f])
            L += runs_table(rows, f, True)
    for f in ("catdog", "catdog-bf16"):
        rows = [r for r in records if f in r["ratios"] and r["date"] < ENGINE_SINCE]
        if rows:
            L.append("%s, earlier engines (not in the medians):\n" % NAMES[f])
            L += runs_table(rows, f, False)
    return L


def write_report(doc, path_md):
    R, fws, meta = doc["frameworks"], doc["frameworks_order"], doc["meta"]
    cd = "catdog"
    refs = [f for f in fws if f in REFS]
    cds = [f for f in fws if f.startswith("catdog")]
    _MARKS["on"] = not meta["quick"]
    L = []
    L.append("# catdog benchmark results\n")
    if meta["quick"]:
        L.append("> **QUICK MODE** (`--quick`): few iterations and a tiny lab (1+1 epochs on 3 "
                 "batches). These numbers only prove that every side runs; they are not measurements, and no ✓/✗ "
                 "against the targets is shown.\n")
    la = meta.get("loadavg_start")
    if la and la[0] > 0.5:
        L.append("> **The machine was not quiet**: 1-minute load average %.2f when the run started "
                 "(%.2f at the end). Other work competes for the cores; OpenMP-based runtimes "
                 "(PyTorch, TensorFlow's oneDNN) degrade badly under contention.\n"
                 % (la[0], (meta.get("loadavg_end") or [0])[0]))
    L.append("- date: %s" % meta["date"])
    L.append("- commit (benchmarks): `%s`" % meta["commit"])
    src = R.get("catdog", {}).get("versions", {}).get("source")
    if src:
        L.append("- catdog installed from: `%s` (the installed package, not necessarily this commit)" % src)
    m = meta["machine"]
    L.append("- machine: %s; %s logical CPUs (%s physical cores), %s MHz; %s"
             % (m["model"], m["logical_cpus"], m.get("physical_cores", "?"), fmt(m.get("max_mhz") or m.get("mhz"), 0),
                meta["platform"]))
    L.append("- CPU flags: %s" % (" ".join(m["flags"]) or "none of avx/avx2/avx512/amx/bf16"))
    L.append("- threads: %d for every framework (OMP_NUM_THREADS, TF intra-op %d / inter-op 1, "
             "torch.set_num_threads(%d) / interop 1, catdog.set_num_threads(%d))"
             % ((meta["threads"],) * 4))
    L.append("- batch %d, %d×%d, alpha %.1f; cases 1–3: median of %d timed repeats (%s steps each) after "
             "warm-up; case 5: median of %d fresh processes"
             % (32, 160, 160, 1.0, meta["repeats_eff"], meta["iters"], meta["case5_runs"]))
    L.append("- command: `%s`" % meta["command"])
    for f in fws:
        r = R[f]
        if r["available"]:
            L.append("- %s: %s" % (NAMES.get(f, f), ", ".join("%s %s" % kv for kv in r.get("versions", {}).items())))
        else:
            L.append("- %s: **not available: %s**" % (NAMES.get(f, f), r["reason"]))
    L.append("")

    # cases 1-3
    L.append("## Cases 1–3: throughput (images/s, higher is better)\n")
    hdr = ["case"] + [NAMES[f] for f in fws]
    for c in cds:
        hdr += ["%s / %s" % (NAMES[c], NAMES[r]) for r in refs]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    targets = {1: {"tensorflow": 1.5, "pytorch": 1.5, "onnxruntime": 1.0},
               2: {"tensorflow": 2.0, "pytorch": 1.5, "pytorch-compile": 1.5},
               3: {"tensorflow": 2.0, "pytorch": 1.5, "pytorch-compile": 1.5}}

    def thr_target(cf, rf, c):  # catdog/ref images/s must be >= this (None: no target)
        if rf == "onnxruntime" and cf.endswith("bf16") and c == 1:
            return 1.8  # bf16 against ONNX Runtime fp32
        if rf.startswith("openvino"):  # each precision against its own OpenVINO side
            return 1.2 if c == 1 and cf.endswith("bf16") == rf.endswith("bf16") else None
        return targets[c].get(rf)

    def thr_cell(cf, rf, c):
        a, b = get(R, cf, c, "images_per_s"), get(R, rf, c, "images_per_s")
        t = thr_target(cf, rf, c)
        if t is None:
            return ratio(a, b) + " (no target)" if a and b else ratio(a, b)
        return ratio(a, b) + (check(a / b >= t) if a and b else "") + " (target ≥ %.1f×)" % t

    def lat_cell(cf, rf):
        a, b = get(R, cf, 1, "batch1", "latency_ms"), get(R, rf, 1, "batch1", "latency_ms")
        if rf == "onnxruntime":
            if cf.endswith("bf16"):
                return ratio(a, b) + " (no target)" if a and b else ratio(a, b)
            return (ratio(a, b) + (check(a / b <= 1 / 1.3) if a and b else "")
                    + " (target ≤ 0.77×: ≥ 1.3× faster)")
        if rf == "pytorch-compile" or (rf.startswith("openvino")
                                       and cf.endswith("bf16") != rf.endswith("bf16")):
            return ratio(a, b) + " (no target)" if a and b else ratio(a, b)
        if rf.startswith("openvino"):
            t = 1 / 1.2 if rf.endswith("bf16") else 1.0
            return (ratio(a, b) + (check(a / b <= t) if a and b else "")
                    + " (target ≤ %s×: ≥ %s× its speed)" % (tfmt(t), "1.2" if t < 1 else "1.0"))
        return ratio(a, b) + (check(a < b) if a and b else "") + " (target < 1×)"
    labels = {1: "1 inference, batch 32", 2: "2 transfer-learning train step (frozen base, aug, Adam)",
              3: "3 fine-tuning train step (from layer 100, RMSprop)"}
    for c in (1, 2, 3):
        row = [labels[c]] + [cell(R, f, c, "images_per_s") for f in fws]
        for cf in cds:
            for rf in refs:
                row.append(thr_cell(cf, rf, c))
        L.append("| " + " | ".join(row) + " |")
    row = ["1 batch-1 latency, ms (lower is better)"] + [cell(R, f, 1, "batch1", "latency_ms", nd=2) for f in fws]
    for cf in cds:
        for rf in refs:
            row.append(lat_cell(cf, rf))
    L.append("| " + " | ".join(row) + " |")
    L.append("")
    if "pytorch-compile" in fws or "onnxruntime" in fws:
        L.append("PyTorch compiled and ONNX Runtime are the strongest peers (issue 15): targets catdog "
                 "fp32 ≥ 1.0× ONNX Runtime at batch 32 and ≥ 1.3× faster at batch 1, catdog bf16 ≥ 1.8× "
                 "ONNX Runtime fp32, training steps ≥ 1.5× compiled PyTorch. ONNX Runtime runs case 1 "
                 "only.\n")
    if any(f.startswith("openvino") for f in fws):
        L.append("OpenVINO (issue 24) runs case 1 on the ONNX Runtime side's export: targets catdog "
                 "fp32 ≥ 1.2× OpenVINO fp32 at batch 32 and ≥ 1.0× at batch 1 (latency ratio ≤ 1), "
                 "catdog bf16 ≥ 1.2× OpenVINO bf16 at both (latency ratio ≤ 0.83).\n")
        for f in [f for f in fws if f.startswith("openvino")]:
            p = get(R, f, 1, "properties")
            if p:
                L.append("%s as compiled (batch 32): %s; compile %s s (batch 32), %s s (batch 1).\n"
                         % (NAMES[f], ", ".join("%s %s" % kv for kv in p.items()),
                            cell(R, f, 1, "compile_s"), cell(R, f, 1, "batch1", "compile_s")))
    for f in [f for f in fws if f.startswith("openvino")]:
        sw = get(R, f, 1, "sweep")
        if sw:
            L.append("%s settings tried (`--openvino-sweep`; each timed twice, the list in order and then "
                     "reversed, medians; the first row is the side's own):\n" % NAMES[f])
            L.append("| setting | batch 32, images/s | batch 1, ms | as compiled |")
            L.append("|---|---|---|---|")
            for x in sw:
                pr = x.get("properties", {})
                L.append("| %s | %.1f | %.2f | %s |" % (
                    x["setting"], x["images_per_s"], x["latency_ms"],
                    ", ".join("%s %s" % (k, pr[k]) for k in ("PERFORMANCE_HINT", "INFERENCE_NUM_THREADS",
                                                             "NUM_STREAMS", "ENABLE_CPU_PINNING") if k in pr)))
            L.append("")
    rr = rounds_lines(R, fws)
    if rr:
        L += rr
    if R.get("pytorch-compile", {}).get("available"):
        L.append("torch.compile time (inductor, cold on-disk cache; the first call of each case, "
                 "not in the warm-up or the timed steps): case 1 batch 32 %s s, batch 1 %s s; case 2 %s s; case 3 %s s.\n"
                 % (cell(R, "pytorch-compile", 1, "compile_s"),
                    cell(R, "pytorch-compile", 1, "batch1", "compile_s"),
                    cell(R, "pytorch-compile", 2, "compile_s"), cell(R, "pytorch-compile", 3, "compile_s")))
        e = get(R, "pytorch-compile", 1, "vs_eager_rel_err")
        if e is not None:
            L.append("Compiled vs eager PyTorch logits on the batch of 32: max|compiled − eager| / "
                     "max|eager| = %.2e → %s (tolerance 1e-4).\n" % (e, "OK" if e < 1e-4 else "FAILED"))

    # case 4
    L.append("## Case 4: the short lab (%s epochs, real data, validation included)\n"
             % ("1+1 (quick, 3 batches)" if meta["quick"] else meta["lab_epochs"].replace(",", "+")))
    L.append("| framework | wall time, s | phase 1 fit, s | phase 2 fit, s | peak RSS, MiB | test accuracy | "
             "wall vs TF | RSS vs TF |")
    L.append("|---|---|---|---|---|---|---|---|")
    tfw, tfr = get(R, "tensorflow", 4, "wall_s"), get(R, "tensorflow", 4, "peak_rss_mb")
    for f in [f for f in fws if runs_case(f, 4)]:
        w, rss = get(R, f, 4, "wall_s"), get(R, f, 4, "peak_rss_mb")
        rw = ratio(w, tfw) + (check(w / tfw <= 0.5) if f.startswith("catdog") and w and tfw else "")
        rr = ratio(rss, tfr) + (check(rss / tfr <= 0.5) if f.startswith("catdog") and rss and tfr else "")
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            NAMES[f], cell(R, f, 4, "wall_s"), cell(R, f, 4, "phase1_s"), cell(R, f, 4, "phase2_s"),
            cell(R, f, 4, "peak_rss_mb", nd=0), cell(R, f, 4, "test_accuracy", nd=3),
            rw if f != "tensorflow" else "1×", rr if f != "tensorflow" else "1×"))
    L.append("\nTargets: catdog wall time ≤ 0.5× and peak RSS ≤ 0.5× TensorFlow/Keras. Peak RSS is the "
             "child process's VmHWM (cross-checked with the parent's wait4 ru_maxrss in results.json). "
             "Wall time runs from creating the datasets to the end of `evaluate(test)`; it includes "
             "building the model and loading the weights, not the `import`.\n")

    # case 5
    L.append("## Case 5: import + build MobileNetV2 + load the ImageNet weights (s, fresh process)\n")
    L.append("| framework | seconds (median) | all runs | process wall incl. interpreter start |")
    L.append("|---|---|---|---|")
    for f in [f for f in fws if runs_case(f, 5)]:
        v = get(R, f, 5, "seconds")
        tgt = (check(v < 1.0) + " (target < 1 s)") if f.startswith("catdog") and v else ""
        L.append("| %s | %s%s | %s | %s |" % (NAMES[f], cell(R, f, 5, "seconds", nd=2), tgt,
                                             ", ".join(fmt(x, 2) for x in (get(R, f, 5, "all") or [])),
                                             cell(R, f, 5, "process_wall_s", nd=2)))
    L.append("")

    # GFLOP/s
    fl, pk = doc["flops"], doc["peak"]
    L.append("## Achieved GFLOP/s against the machine's peak\n")
    L.append("MACs counted from the layer shapes (`benchmarks/flops.py`: Conv2D, DepthwiseConv2D, Dense; "
             "1 MAC = 2 FLOP; BN/ReLU6/add/augmentation not counted). Forward: %.1f M MACs/image. "
             "Training step = forward + backward-data above the lowest trainable layer + "
             "backward-weights of trainable layers: case 2 %.1f M, case 3 %.1f M MACs/image.\n"
             % (fl["forward_macs"] / 1e6, fl["case2"]["total"] / 1e6, fl["case3"]["total"] / 1e6))
    L.append("Peak (fp32, %d threads): **%.0f GFLOP/s** = %s%s.\n"
             % (meta["threads"], pk["fp32_gflops"], pk["how"],
                ("; bf16 peak %.0f GFLOP/s (AVX512_BF16 doubles the rate)" % pk["bf16_gflops"]) if pk["bf16_gflops"] else ""))
    def peak_of(f):  # the bf16 side is measured against the bf16 peak
        return pk["bf16_gflops"] if f.endswith("bf16") and pk["bf16_gflops"] else pk["fp32_gflops"]

    hdr = ["case", "GFLOP/image"] + ["%s GFLOP/s (%% of %s peak)" % (
        NAMES[f], "bf16" if peak_of(f) != pk["fp32_gflops"] else "fp32") for f in fws]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    over = False
    for c in (1, 2, 3):
        row = [labels[c].split(",")[0].split(" (")[0], "%.3f" % fl["case%d_gflop_per_image" % c]]
        for f in fws:
            g = get(R, f, c, "gflop_per_s")
            row.append("—" if g is None else "%.1f (%.0f%%)" % (g, 100 * g / peak_of(f)))
            over = over or (g is not None and g > peak_of(f))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    if over:
        L.append("Above 100%: the peak uses the nominal clock, and the cores run faster than that "
                 "(boost), so every percentage here overstates how close a run is to the limit.\n")

    # parity
    p = doc.get("parity")
    if p:
        L.append("## PyTorch network vs Keras (same weights, same input)\n")
        if "base_output_rel_err" in p:
            L.append("max|torch − keras| / max|keras|: base output (5×5×1280) %.2e, logits %.2e → %s "
                     "(tolerance 1e-4)\n" % (p["base_output_rel_err"], p["logits_rel_err"],
                                             "OK" if p["ok"] else "FAILED"))
        else:
            L.append("%s\n" % p)

    po = R.get("onnxruntime", {}).get("parity")
    if po:
        L.append("## ONNX Runtime vs PyTorch (the exported network, same input)\n")
        ex = R["onnxruntime"].get("export", {})
        L.append("max|ort − torch| / max|torch| over the logits of 4 images: %.2e → %s (tolerance 1e-4). "
                 "Exported with %s from torch %s in %s s.\n"
                 % (po["logits_rel_err"], "OK" if po["ok"] else "FAILED", ex.get("how", "?"),
                    ex.get("torch", "?"), fmt(ex.get("seconds"), 1)))

    for f in [f for f in fws if f.startswith("openvino")]:
        po = R[f].get("parity")
        if po:
            ex = R[f].get("export", {})
            L.append("## %s vs PyTorch (the same ONNX file, same input)\n" % NAMES[f])
            if "features_cosine_min" in po:  # bf16: the pooled features against OpenVINO fp32's
                L.append("Pooled features (1280) against OpenVINO fp32's on 4 images: min cosine %.4f → %s "
                         "(≥ %g, catdog bf16's own bar); logits max|ov − torch| / max|torch| %.2e "
                         "(reported: bf16 rounding through Dense(1)'s sum). " % (
                             po["features_cosine_min"], "OK" if po["ok"] else "FAILED", po["tolerance"],
                             po["logits_rel_err"]))
            else:
                L.append("max|ov − torch| / max|torch| over the logits of 4 images: %.2e → %s "
                         "(tolerance %g). " % (po["logits_rel_err"], "OK" if po["ok"] else "FAILED",
                                               po.get("tolerance", 1e-4)))
            L[-1] += "ONNX file sha256 %s…%s.\n" % (ex.get("sha256", "?")[:12],
                                                     " (%s)" % ex["reused"] if ex.get("reused") else "")

    errs = [(f, c, e) for f in fws for c, e in sorted(R[f]["errors"].items())]
    if errs:
        L.append("## Errors\n")
        for f, c, e in errs:
            L.append("- %s case %s: %s" % (NAMES[f], c, e))
        L.append("")
    L.append("## How each side runs\n")
    L.append("- **catdog**: the lab's Keras code with `catdog` in place of `tf.keras` (`bench_catdog.py`), "
             "from `%s`." % (R.get("catdog", {}).get("executable") or sys.executable))
    L.append("- **TensorFlow/Keras**: the lab's own code (`bench_tensorflow.py`): `predict_on_batch`, "
             "`train_on_batch` (tf.function graphs, oneDNN on, XLA off as Keras decides on CPU), "
             "`image_dataset_from_directory` + `prefetch(AUTOTUNE)` + `fit` for the lab.")
    L.append("- **PyTorch**: Keras's MobileNetV2 written with torch.nn (`bench_pytorch.py`), eager, "
             "channels_last, fp32; augmentation on the batch with torch ops (flip, "
             "affine_grid/grid_sample rotation with reflection); case 4 loads JPEGs with PIL on a "
             "prefetch thread.")
    if "pytorch-compile" in fws:
        L.append("- **PyTorch compiled**: the same torch.nn network through `torch.compile` (inductor, "
                 "default mode, dynamic=False; dynamo caches reset per case, inductor's on-disk cache "
                 "fresh per process), channels_last, fp32; in "
                 "cases 2–3 the model's forward and backward are compiled, augmentation and the "
                 "optimizer step stay eager. Compile time is the first call, reported apart.")
    if "onnxruntime" in fws:
        L.append("- **ONNX Runtime**: the PyTorch network exported with `torch.onnx.export` (legacy "
                 "exporter, opset 17), CPU execution provider, intra-op %d / inter-op 1 threads, "
                 "sequential, all graph optimizations, fp32 NCHW (`bench_onnxruntime.py`)." % meta["threads"])
    if any(f.startswith("openvino") for f in fws):
        L.append("- **OpenVINO**: the ONNX Runtime side's ONNX file (read from this run's work folder, "
                 "or exported the same way), CPU plugin, INFERENCE_PRECISION_HINT f32 (bf16 for the "
                 "bf16 side), PERFORMANCE_HINT LATENCY, INFERENCE_NUM_THREADS %d, NUM_STREAMS 1, "
                 "CPU pinning off, static shapes (compiled once per batch size), one InferRequest, NCHW "
                 "(`bench_openvino.py`; the settings tried are in ANALYSIS.md)." % meta["threads"])
    L.append("- Inputs for cases 1–3 are random (speed does not depend on values); the base's weights come "
             "from the ImageNet h5. See `benchmarks/README.md`.")
    history = os.path.join(HERE, "runs.jsonl")
    if os.path.exists(history) and not meta["quick"]:
        L += runs_section([json.loads(line) for line in open(history) if line.strip()])
    # the full lab's runs (lab_metrics_*.json, written by `python -m catdog.lab`) and the
    # hand-written profile notes (ANALYSIS.md) ride along, so a rerun keeps them
    import glob
    import io
    from contextlib import redirect_stdout

    import lab_section
    runs = sorted(glob.glob(os.path.join(HERE, "lab_metrics_*.json")),
                  key=lambda p: ("bf16" in p, p))
    if runs:
        buf = io.StringIO()
        with redirect_stdout(buf):
            lab_section.main(runs)
        L.append(buf.getvalue())
    full = os.path.join(HERE, "full_lab.json")
    if os.path.exists(full):  # the full lab side by side, five seeds (full_lab.py)
        import full_lab
        with open(full) as f:
            L.append("\n".join(full_lab.render(json.load(f))))
    nets = os.path.join(HERE, "networks.json")
    if os.path.exists(nets):  # issue 21's bases side by side, cases 1-3 (networks.py)
        import networks
        with open(nets) as f:
            L.append("\n".join(networks.render(json.load(f))))
    tutorial = os.path.join(HERE, "classification_tutorial.json")
    if os.path.exists(tutorial):  # issue 22's tutorial side by side (classification_tutorial.py)
        import classification_tutorial
        with open(tutorial) as f:
            L.append("\n".join(classification_tutorial.render(json.load(f))))
    analysis = os.path.join(HERE, "ANALYSIS.md")
    if os.path.exists(analysis):
        L.append(open(analysis).read())
    with open(path_md, "w") as f:
        f.write("\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="few iterations, tiny lab: proves it runs")
    ap.add_argument("--cases", default="1,2,3,4,5")
    ap.add_argument("--frameworks", default="catdog,tensorflow,pytorch,pytorch-compile,onnxruntime,openvino",
                    help="comma list of: " + ", ".join(NAMES) + " (catdog-bf16, openvino-bf16 also via --bf16)")
    ap.add_argument("--bf16", action="store_true",
                    help="also run catdog with set_precision('bf16') (and OpenVINO in bf16 when openvino runs)")
    ap.add_argument("--openvino-sweep", action="store_true",
                    help="the OpenVINO sides also time the alternative settings (bench_openvino.py --ov-sweep)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run cases 1-3 this many times, the sides' order rotating; medians over rounds")
    ap.add_argument("--lab-epochs", default="2,2", help="case 4: initial,fine-tune epochs")
    ap.add_argument("--case5-runs", type=int, default=None, help="fresh processes for case 5 (default: repeats)")
    ap.add_argument("--no-parity", action="store_true", help="skip the torch-vs-Keras output check")
    ap.add_argument("--catdog-python", default=None, help="interpreter with catdog installed (default: this one)")
    ap.add_argument("--timeout", type=int, default=3600, help="per child process, seconds")
    ap.add_argument("--out-dir", default=HERE, help="where RESULTS.md and results.json go")
    ap.add_argument("--report-only", action="store_true", help="re-render RESULTS.md from results.json")
    args = ap.parse_args()
    if args.report_only:
        with open(os.path.join(args.out_dir, "results.json")) as f:
            doc = json.load(f)
        write_report(doc, os.path.join(args.out_dir, "RESULTS.md"))
        print("[run] re-rendered RESULTS.md")
        return
    cases = [int(c) for c in args.cases.split(",") if c]
    fws = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    if args.bf16 and "catdog-bf16" not in fws:
        fws.insert(fws.index("catdog") + 1 if "catdog" in fws else 0, "catdog-bf16")
    if args.bf16 and "openvino" in fws and "openvino-bf16" not in fws:
        fws.insert(fws.index("openvino") + 1, "openvino-bf16")
    bad = [f for f in fws if f not in NAMES]
    if bad:
        ap.error("unknown framework(s): %s (choose from %s)" % (bad, ", ".join(NAMES)))

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = os.path.join(HERE, "_work", stamp)
    os.makedirs(workdir, exist_ok=True)
    R = {f: {"available": True, "reason": None, "cases": {}, "errors": {}, "processes": [], "versions": {}}
         for f in fws}

    def active():
        return [f for f in fws if R[f]["available"]]

    t_all = time.perf_counter()
    load_start = loadavg()
    # cases 1-3: one process per framework
    c123 = ",".join(str(c) for c in cases if c in (1, 2, 3))
    if c123:
        per_round = {f: [] for f in fws}
        for i, f in rotations(fws, args.rounds):
            mine = ",".join(c for c in c123.split(",") if runs_case(f, c))
            if R[f]["available"] and mine:
                tag = "c123" if args.rounds == 1 else "c123_r%d" % i
                res, info = run_child(f, mine, args, workdir, tag, args.timeout)
                merge(R, f, res, info)
                per_round[f].append(res.get("cases", {}))
        if args.rounds > 1:
            for f, rounds in per_round.items():
                combine_rounds(R[f], rounds)
    # case 4: one fresh process per framework
    if 4 in cases:
        for f in [f for f in active() if runs_case(f, 4)]:
            merge(R, f, *run_child(f, "4", args, workdir, "c4", args.timeout))
    # case 5: fresh processes, interleaved, median
    n5 = args.case5_runs or (1 if args.quick else args.repeats)
    if 5 in cases:
        runs = {f: [] for f in fws}
        for i in range(n5):
            for f in [f for f in active() if runs_case(f, 5)]:
                res, info = run_child(f, "5", args, workdir, "c5_%d" % i, 600)
                if res.get("available", True) and "5" in res.get("cases", {}):
                    runs[f].append((res["cases"]["5"]["seconds"], info["wall_s"]))
                    R[f]["processes"].append(info)
                    for k in ("versions", "executable"):
                        if res.get(k):
                            R[f][k] = res[k]
                else:
                    merge(R, f, res, info)
        for f, rr in runs.items():
            if rr:
                R[f]["cases"]["5"] = {"seconds": statistics.median(s for s, _ in rr), "all": [s for s, _ in rr],
                                      "process_wall_s": statistics.median(w for _, w in rr)}

    doc = {"frameworks": R, "frameworks_order": fws}
    if not args.no_parity and "tensorflow" in fws and "pytorch" in fws:
        print("[run] parity: Keras vs torch.nn on the same weights", flush=True)
        doc["parity"] = parity(args, workdir, R)
    info = flops.cpu_info()
    iters = "2 (batch 32) / 3 (batch 1)" if args.quick else "10 (batch 32) / 30 (batch 1)"
    doc["meta"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(), "machine": info, "platform": platform.platform(),
        "threads": args.threads, "repeats": args.repeats,
        "repeats_eff": min(args.repeats, 2) if args.quick else args.repeats, "iters": iters,
        "case5_runs": n5, "quick": args.quick, "lab_epochs": args.lab_epochs, "rounds": args.rounds,
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "total_s": time.perf_counter() - t_all, "loadavg_start": load_start, "loadavg_end": loadavg(), "workdir": os.path.relpath(workdir, ROOT)}
    doc["flops"] = flops.summary(1.0, 160)
    doc["peak"] = flops.peak_gflops(args.threads, info)
    os.makedirs(args.out_dir, exist_ok=True)
    jpath = os.path.join(args.out_dir, "results.json")
    mpath = os.path.join(args.out_dir, "RESULTS.md")
    with open(jpath, "w") as f:
        json.dump(doc, f, indent=1, default=float)
    if not args.quick and args.out_dir == HERE and set(BASE_REFS) <= set(fws):
        with open(os.path.join(HERE, "runs.jsonl"), "a") as f:
            f.write(json.dumps(run_record(doc)) + "\n")
    write_report(doc, mpath)
    print(open(mpath).read())
    print("[run] wrote %s and %s (%.0f s)" % (os.path.relpath(mpath), os.path.relpath(jpath),
                                              doc["meta"]["total_s"]))


if __name__ == "__main__":
    main()
