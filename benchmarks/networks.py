#!/usr/bin/env python3
"""Issue 21's bases side by side: cases 1-3 for ResNet50, VGG16, MobileNetV3Small/Large and
EfficientNetB0 on every side.

    python benchmarks/networks.py [--nets resnet50,vgg16,mobilenetv3small,mobilenetv3large,efficientnetb0]
                                  [--frameworks catdog,tensorflow,pytorch,pytorch-compile,onnxruntime,openvino]
                                  [--repeats 3] [--rounds 1] [--threads 2] [--quick] [--no-parity]
    python benchmarks/networks.py --report-only      # re-render from networks.json

Each side is run.py's child for that framework with `--net NAME --cases 1,2,3` (one process
per side per network and round; the sides' order rotates from network to network and from round
to round, and with --rounds N each case is the median over the N rounds): the lab's model
(RandomFlip + RandomRotation, the base called with training=False, GAP, Dropout(0.2),
Dense(1)) on that base at 160x160 (Keras's minimum for every one of these no-top bases is 32:
none needs 224), seeded random weights (no ImageNet files for these here), fine-tuned from
catdog's per-family default layer (benchmarks/_common.py NETS = catdog/lab.py BASES).
PyTorch (eager and compiled) runs ResNet50 and VGG16 (torch.nn, Keras's layer for layer);
ONNX Runtime and OpenVINO run case 1 on catdog's own ONNX export of the same model.
Parity (ResNet50, VGG16): Keras's base output and logits against the torch.nn network on
Keras's weights, and the torch side's fine-tuning rule against Keras's layer order.

Writes benchmarks/networks.json (one record per network, replaced when that network is run
again, each with its date, commit and machine) and RESULTS.md's section "Other bases side by
side" (run.py's report includes it). --quick writes only into its _work/ folder.
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
import _common as C  # noqa: E402
import flops  # noqa: E402
import run  # noqa: E402

JSON = os.path.join(HERE, "networks.json")
NETS = ["resnet50", "vgg16", "mobilenetv3small", "mobilenetv3large", "efficientnetb0"]
SIDES = ["catdog", "tensorflow", "pytorch", "pytorch-compile", "onnxruntime", "openvino"]
TORCH = ("pytorch", "pytorch-compile")
TARGET_TF = 2.0  # issue 21: every case >= 2x TensorFlow
TARGET_RUNTIME = 1.0  # inference >= 1.0x the best of ONNX Runtime and OpenVINO (batch 32 and 1)


def parity(net, a, workdir):
    """Keras's base output / logits against the torch.nn network on Keras's weights."""
    env = run.child_env(a.threads)
    py_tf, py_pt = run.interpreter("tensorflow", a), run.interpreter("pytorch", a)
    if not (os.path.exists(py_tf) and os.path.exists(py_pt)):
        return {"skipped": "needs both reference venvs"}
    npz = os.path.join(workdir, "keras_reference_%s.npz" % net)
    p = subprocess.run([py_tf, run.script("tensorflow"), "--net", net, "--dump-reference", npz],
                       env=env, cwd=HERE, capture_output=True, text=True)
    if p.returncode or not os.path.exists(npz):
        return {"error": "keras dump failed: " + p.stderr.strip()[-300:]}
    out = os.path.join(workdir, "parity_%s.json" % net)
    p = subprocess.run([py_pt, run.script("pytorch"), "--net", net, "--check-parity", npz, "--json", out],
                       env=env, cwd=HERE, capture_output=True, text=True)
    if p.returncode or not os.path.exists(out):
        return {"error": "torch check failed: " + p.stderr.strip()[-300:]}
    return json.load(open(out)).get("parity", {})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--frameworks", default=",".join(SIDES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every side this many times, interleaved; medians over the rounds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="few iterations: proves every side runs")
    ap.add_argument("--no-parity", action="store_true")
    ap.add_argument("--catdog-python", default=None, help="interpreter with catdog installed (default: this one)")
    ap.add_argument("--timeout", type=int, default=1800, help="per child process, seconds")
    ap.add_argument("--json", default=None, help="default: benchmarks/networks.json (--quick: its _work folder)")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    path = a.json or JSON
    if a.report_only:
        doc = json.load(open(path))
        print("\n".join(render(doc)))
        if path == JSON:
            rerender_results()
        return
    nets = [n.strip() for n in a.nets.split(",") if n.strip()]
    fws = [f.strip() for f in a.frameworks.split(",") if f.strip()]
    bad = [n for n in nets if n not in NETS] + [f for f in fws if f not in SIDES]
    if bad:
        ap.error("unknown network(s) / side(s) %s (networks: %s; sides: %s)"
                 % (bad, ", ".join(NETS), ", ".join(SIDES)))
    workdir = os.path.join(HERE, "_work", "networks-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(workdir, exist_ok=True)
    if a.quick and not a.json:
        path = os.path.join(workdir, "networks.json")
    doc = json.load(open(path)) if os.path.exists(path) else {"nets": {}}
    child = argparse.Namespace(threads=a.threads, repeats=a.repeats, lab_epochs="2,2", quick=a.quick,
                               catdog_python=a.catdog_python, seed=None, net=None)
    machine = flops.cpu_info()
    t_all = time.perf_counter()
    for k, net in enumerate(nets):
        t_net = time.perf_counter()
        child.net = net
        rec = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "commit": run.git_commit(), "machine": machine, "platform": run.platform.platform(),
               "threads": a.threads, "repeats": a.repeats, "rounds": a.rounds, "quick": a.quick,
               "iters": C.settings(a.quick, net), "size": C.NETS[net]["size"],
               "fine_tune_at": C.NETS[net]["fine_tune_at"],
               "command": "python benchmarks/networks.py " + " ".join(sys.argv[1:]),
               "loadavg_start": run.loadavg(), "workdir": os.path.relpath(workdir, ROOT),
               "frameworks_order": fws, "frameworks": {}}
        for f in fws:
            r = rec["frameworks"][f] = {"available": True, "reason": None, "cases": {}, "errors": {},
                                        "processes": [], "versions": {}}
            if f in TORCH and net not in C.TORCH_NETS:
                r.update(available=False, reason="no faithful torch version of Keras's %s "
                         "(torchvision's differs): not run" % C.NETS[net]["builder"])
        # Rounds interleave the sides (each runs once per round, the order rotating, starting
        # one side later per network), so a drift of the host's speed falls on every side.
        per_round = {f: [] for f in fws}
        for i, f in run.rotations(fws, a.rounds, first=k):
            if not rec["frameworks"][f]["available"]:
                continue
            cases = ",".join(c for c in ("1", "2", "3") if run.runs_case(f, c))
            tag = net if a.rounds == 1 else "%s_r%d" % (net, i)
            res, info = run.run_child(f, cases, child, workdir, tag, a.timeout)
            run.merge(rec["frameworks"], f, res, info)
            per_round[f].append(res.get("cases", {}))
            print("[networks] %-16s %-15s %s%s" % (net, f, summary_line(rec["frameworks"][f]),
                  "" if a.rounds == 1 else " (round %d)" % (i + 1)), flush=True)
        if a.rounds > 1:
            for f, rounds in per_round.items():
                run.combine_rounds(rec["frameworks"][f], rounds)
        if not a.no_parity and net in C.TORCH_NETS and "tensorflow" in fws and "pytorch" in fws:
            print("[networks] parity %s: Keras vs torch.nn on the same weights" % net, flush=True)
            rec["parity"] = parity(net, child, workdir)
        rec["loadavg_end"] = run.loadavg()
        rec["total_s"] = time.perf_counter() - t_net
        doc["nets"][net] = rec
        doc["order"] = [n for n in NETS if n in doc["nets"]]
        with open(path + ".tmp", "w") as f:
            json.dump(doc, f, indent=1, default=float)
        os.replace(path + ".tmp", path)
    print("\n".join(render(doc)))
    print("[networks] wrote %s (%.0f s)" % (os.path.relpath(path), time.perf_counter() - t_all))
    if path == JSON:
        rerender_results()


def summary_line(r):
    if not r["available"]:
        return "not available: %s" % r["reason"]
    parts = []
    for c in ("1", "2", "3"):
        v = r["cases"].get(c)
        if v:
            parts.append("case %s %.0f ms" % (c, v["ms_per_step"]))
            if c == "1" and v.get("batch1"):
                parts.append("batch 1 %.1f ms" % v["batch1"]["latency_ms"])
        elif c in r["errors"]:
            parts.append("case %s: %s" % (c, r["errors"][c][:80]))
    return "; ".join(parts)


def rerender_results():
    """RESULTS.md carries this section: re-render it from results.json when there is one."""
    res = os.path.join(HERE, "results.json")
    if os.path.exists(res):
        run.write_report(json.load(open(res)), os.path.join(HERE, "RESULTS.md"))
        print("[networks] re-rendered RESULTS.md")


# ------------------------------------------------------------------ report

ROWS = [  # (label, case, keys to the ms value)
    ("1 inference, batch 32", "1", ("ms_per_step",)),
    ("1 inference, batch 1", "1", ("batch1", "latency_ms")),
    ("2 transfer step", "2", ("ms_per_step",)),
    ("3 fine-tuning step", "3", ("ms_per_step",)),
]


def _ms(R, f, case, keys):
    v = R.get(f, {}).get("cases", {}).get(case)
    for k in keys:
        if v is None:
            return None
        v = v.get(k)
    return v


def _cell(R, f, case, keys):
    r = R.get(f)
    if r is None:
        return "—"
    if not r["available"]:
        return "n/a"
    v = _ms(R, f, case, keys)
    if v is None:
        return "error" if case in r["errors"] else "—"
    return "%.1f" % v if v < 100 else "%.0f" % v


def render(doc):
    """The Markdown section (a list of lines)."""
    nets = [n for n in doc.get("order", NETS) if n in doc.get("nets", {})]
    L = ["## Other bases side by side (issue 21; cases 1–3, `benchmarks/networks.py`)\n"]
    if not nets:
        return L + ["No network measured yet.\n"]
    quick = any(doc["nets"][n]["quick"] for n in nets)

    def mark(ok):  # " ✓" / " ✗"; nothing in --quick mode, as run.py
        return run.check(ok, on=not quick)
    if quick:
        L.append("> **QUICK MODE** (`--quick`): a few steps per case; these numbers only prove that "
                 "every side runs, they are not measurements.\n")
    L.append("The lab's model (RandomFlip + RandomRotation → base(training=False) → GAP → "
             "Dropout(0.2) → Dense(1)) on each base at **160×160** (Keras's minimum for all five "
             "no-top bases is 32×32: none needs 224), batch 32, with **seeded random weights** (no "
             "ImageNet files for these bases here; speed does not depend on the values). "
             "Preprocessing is in the model on every side, as catdog's lab has it: ResNet50's and "
             "VGG16's \"caffe\" `preprocess_input` (BGR, minus the ImageNet mean) before the base, "
             "MobileNetV3's and EfficientNet's Rescaling / Normalization inside it. Case 2 trains the head with the "
             "base frozen (Adam 1e-4); case 3 unfreezes from catdog's per-family default layer "
             "(RMSprop 1e-5; BN stays in inference mode). Milliseconds per step (batch 1: per "
             "call), median of the repeats; ratios are the other side's time / catdog's "
             "(≥ 1: catdog faster). Targets (issue 21): every case ≥ %.0f× TensorFlow; inference "
             "≥ %.1f× the best of ONNX Runtime and OpenVINO at batch 32 and at batch 1.\n"
             % (TARGET_TF, TARGET_RUNTIME))
    L.append("| network | case | catdog | TensorFlow | PyTorch | PyTorch compiled | ONNX Runtime | "
             "OpenVINO | vs TF (≥ %.0f×) | vs best of ORT/OV (≥ %.1f×) | vs compiled PyTorch (no target) |"
             % (TARGET_TF, TARGET_RUNTIME))
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    missed = []
    for n in nets:
        R = doc["nets"][n]["frameworks"]
        for i, (label, case, keys) in enumerate(ROWS):
            cd = _ms(R, "catdog", case, keys)
            cells = [C.NETS[n]["builder"] if i == 0 else "", label]
            cells += [_cell(R, f, case, keys) for f in SIDES]
            tf = _ms(R, "tensorflow", case, keys)
            if cd and tf:
                ok = tf / cd >= TARGET_TF
                cells.append("%.2f×%s" % (tf / cd, mark(ok)))
                if not ok:
                    missed.append("%s %s vs TensorFlow (%.2f×)" % (C.NETS[n]["builder"], label, tf / cd))
            else:
                cells.append("—")
            best = sorted((v, w) for v, w in ((_ms(R, "onnxruntime", case, keys), "ORT"),
                                              (_ms(R, "openvino", case, keys), "OV")) if v)
            if case == "1" and cd and best:
                ok = best[0][0] / cd >= TARGET_RUNTIME
                cells.append("%.2f× (%s)%s" % (best[0][0] / cd, best[0][1], mark(ok)))
                if not ok:
                    missed.append("%s %s vs %s (%.2f×)" % (C.NETS[n]["builder"], label,
                                                          run.NAMES["onnxruntime" if best[0][1] == "ORT"
                                                                    else "openvino"], best[0][0] / cd))
            else:
                cells.append("—")
            pc = _ms(R, "pytorch-compile", case, keys)
            cells.append("%.2f×" % (pc / cd) if cd and pc else "—")
            L.append("| " + " | ".join(cells) + " |")
    L.append("")
    if missed and not quick:
        L.append("Targets missed (%d): %s. Where the time goes: `benchmarks/profile/` (ANALYSIS.md).\n"
                 % (len(missed), "; ".join(missed)))
    # what trains, and what each network's run was
    L.append("Per network: the layer fine-tuning starts at, the weights each side trains in case 3 "
             "(the same layers everywhere), torch.compile's compile time, the checks, and the run:\n")
    for n in nets:
        rec = doc["nets"][n]
        R = rec["frameworks"]
        ft = (R.get("catdog", {}).get("cases", {}).get("3") or {}).get("fine_tune_at") \
            or (R.get("tensorflow", {}).get("cases", {}).get("3") or {}).get("fine_tune_at")
        tp = ", ".join("%s %s" % (run.NAMES[f], "{:,}".format(R[f]["cases"]["3"]["trainable_params"]))
                       for f in SIDES if f in R and (R[f]["cases"].get("3") or {}).get("trainable_params"))
        L.append("- **%s**: fine-tuning from %s; case 3 trainable weights: %s."
                 % (C.NETS[n]["builder"], ("`%s` (index %s)" % (ft[1], ft[0])) if ft else
                    "`%s`" % rec["fine_tune_at"], tp or "—"))
        pc = R.get("pytorch-compile", {})
        if pc.get("available") and pc.get("cases"):
            def g(c, *k):
                return _ms(R, "pytorch-compile", c, k)
            secs = [("%.0f" % v if v is not None else "—") for v in (
                g("1", "compile_s"), g("1", "batch1", "compile_s"), g("2", "compile_s"), g("3", "compile_s"))]
            e = g("1", "vs_eager_rel_err")
            L.append("  torch.compile, cold cache (s): case 1 batch 32 %s, batch 1 %s; case 2 %s; "
                     "case 3 %s; compiled vs eager logits max|Δ| / max|eager| %s."
                     % tuple(secs + ["%.1e" % e if e is not None else "—"]))
        p = rec.get("parity")
        if p and "base_output_rel_err" in p:
            L.append("  PyTorch vs Keras on Keras's weights: max|torch − keras| / max|keras| base output "
                     "%.1e, logits %.1e; torch's trainable layers against Keras's layer order: %s → %s."
                     % (p["base_output_rel_err"], p["logits_rel_err"],
                        p.get("fine_tune_rule", "not checked"), "OK" if p["ok"] else "FAILED"))
        elif p:
            L.append("  PyTorch vs Keras: %s." % p)
        for f in ("onnxruntime", "openvino"):
            po = R.get(f, {}).get("parity")
            if po:
                L.append("  %s vs catdog on catdog's ONNX export (4 images): max|Δ| / max|catdog| over "
                         "the logits %.1e → %s." % (run.NAMES[f], po["logits_rel_err"],
                                                    "OK" if po["ok"] else "FAILED"))
        errs = ["%s case %s: %s" % (run.NAMES[f], c, e[:160]) for f in SIDES if f in R
                for c, e in sorted(R[f]["errors"].items())]
        if errs:
            L.append("  Errors: " + "; ".join(errs) + ".")
        m = rec["machine"]
        it = rec["iters"]
        L.append("  Run %s, commit `%s`, %s (%s logical CPUs), %d threads per side, %d repeats of %d "
                 "steps (batch 1: %d) after %d (%d) warm-up%s; load average %.2f → %.2f; %.0f s."
                 % (rec["date"], rec["commit"][:12], m["model"], m["logical_cpus"], rec["threads"],
                    min(rec["repeats"], it["max_repeats"] or rec["repeats"]), it["iters"], it["iters1"],
                    it["warmup"], it["warmup1"],
                    "" if rec.get("rounds", 1) == 1 else
                    ", in %d rounds interleaving the sides (medians over the rounds)" % rec["rounds"],
                    (rec.get("loadavg_start") or [0])[0],
                    (rec.get("loadavg_end") or [0])[0], rec.get("total_s", 0)))
        vs = {f: R[f].get("versions", {}) for f in SIDES if f in R and R[f].get("available")}
        if "catdog" in vs and vs["catdog"].get("source"):
            L.append("  catdog from `%s`." % vs["catdog"]["source"])
    L.append("")
    L.append("Sides: catdog and TensorFlow/Keras run the same Keras code (`bench_catdog.py` / "
             "`bench_tensorflow.py --net`); PyTorch is Keras's ResNet50 (v1: stride on the first "
             "1×1 convolution, conv biases, BN ε 1.001e-5) and VGG16 written with torch.nn, not "
             "torchvision's (its resnet50 is v1.5), eager and `torch.compile` (inductor); no torch "
             "side for MobileNetV3 / EfficientNet (torchvision's differ from Keras's). ONNX Runtime "
             "and OpenVINO (fp32, the MobileNetV2 section's settings) run catdog's own ONNX export "
             "of the same model (`model.export(path, format=\"onnx\")`, NHWC input). No FLOP "
             "counts here: `flops.py` counts MobileNetV2 only.\n")
    return L


if __name__ == "__main__":
    main()
