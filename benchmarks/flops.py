"""MobileNetV2 layer list (Keras order and names), MAC/FLOP counts, and the machine's peak.

Pure standard library, so every benchmark side (catdog, TensorFlow, PyTorch venvs) and run.py
can import it. The layer list reproduces `keras.applications.MobileNetV2(include_top=False)`:
154 layers including the input layer; index 100 is `block_11_expand_relu`.

Counting rules
--------------
* MACs are counted for the layers that multiply: Conv2D, DepthwiseConv2D and Dense.
  Elementwise work (BN, ReLU6, add, padding, pooling, augmentation) is not counted; it is a
  few percent of the total and it is memory-bound.
  - Conv2D k×k:         Ho·Wo·Cout · k·k·Cin
  - DepthwiseConv2D k×k: Ho·Wo·C · k·k
  - Dense:              Cin·Cout
* One MAC = 2 FLOP.
* Training step (cases 2 and 3), per image, for a trainable set T of weighted layers:
  forward of every layer (the frozen base still runs its forward)
  + backward-data (one forward's worth of MACs) for every weighted layer *above* the lowest
    trainable layer (the lowest one's input gradient is never needed)
  + backward-weights (one forward's worth of MACs) for every trainable weighted layer.

Run `python benchmarks/flops.py` to print the table.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess


def _make_divisible(v, divisor=8, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _same_out(n, k, s):
    return -(-n // s)  # ceil(n / s)


def mobilenet_v2_layers(alpha=1.0, size=160, include_head=True):
    """Keras MobileNetV2 (include_top=False) layers in Keras order, then the lab's head.

    Each layer is a dict: index (Keras index in the base; head layers get None), name, kind
    (input, conv, bn, relu, dwconv, pad, add, gap, dropout, dense), shapes in NHWC without N:
    `in_shape`, `out_shape`; for conv/dwconv: k, stride, padding ("same"/"valid"/pads);
    `params` (trainable weights) and `nontrainable` (BN moving statistics).
    """
    L = []

    def add(name, kind, in_shape, out_shape, **kw):
        d = dict(index=len(L), name=name, kind=kind, in_shape=in_shape, out_shape=out_shape)
        d.update(kw)
        d.setdefault("params", 0)
        d.setdefault("nontrainable", 0)
        L.append(d)
        return out_shape

    h = w = size
    s = add("input_1", "input", None, (h, w, 3))
    first = _make_divisible(32 * alpha, 8)
    # Conv1: TF "same", stride 2 (for even sizes: pad bottom/right by 1, top/left 0).
    ho, wo = _same_out(h, 3, 2), _same_out(w, 3, 2)
    ph = max((ho - 1) * 2 + 3 - h, 0)
    pw = max((wo - 1) * 2 + 3 - w, 0)
    s = add("Conv1", "conv", s, (ho, wo, first), k=3, stride=2, cin=3, cout=first,
            pads=(ph // 2, ph - ph // 2, pw // 2, pw - pw // 2), params=3 * 3 * 3 * first)
    s = add("bn_Conv1", "bn", s, s, params=2 * first, nontrainable=2 * first)
    s = add("Conv1_relu", "relu", s, s)

    def block(s, expansion, stride, filters, block_id):
        in_c = s[2]
        pointwise = _make_divisible(int(filters * alpha), 8)
        prefix = "block_%d_" % block_id if block_id else "expanded_conv_"
        x = s
        if block_id:
            c = expansion * in_c
            x = add(prefix + "expand", "conv", x, (x[0], x[1], c), k=1, stride=1, cin=in_c, cout=c,
                    pads=(0, 0, 0, 0), params=in_c * c)
            x = add(prefix + "expand_BN", "bn", x, x, params=2 * c, nontrainable=2 * c)
            x = add(prefix + "expand_relu", "relu", x, x)
        c = x[2]
        if stride == 2:
            # correct_pad: even size -> (0, 1), odd -> (1, 1), per spatial dim
            pt = 1 - (1 - x[0] % 2)
            pl = 1 - (1 - x[1] % 2)
            pads = (pt, 1, pl, 1)
            x = add(prefix + "pad", "pad", x, (x[0] + pt + 1, x[1] + pl + 1, c), pads=pads)
            ho, wo = (x[0] - 3) // 2 + 1, (x[1] - 3) // 2 + 1
            x = add(prefix + "depthwise", "dwconv", x, (ho, wo, c), k=3, stride=2, cin=c, cout=c,
                    pads=(0, 0, 0, 0), params=9 * c)
        else:
            x = add(prefix + "depthwise", "dwconv", x, x, k=3, stride=1, cin=c, cout=c,
                    pads=(1, 1, 1, 1), params=9 * c)
        x = add(prefix + "depthwise_BN", "bn", x, x, params=2 * c, nontrainable=2 * c)
        x = add(prefix + "depthwise_relu", "relu", x, x)
        x = add(prefix + "project", "conv", x, (x[0], x[1], pointwise), k=1, stride=1, cin=c,
                cout=pointwise, pads=(0, 0, 0, 0), params=c * pointwise)
        x = add(prefix + "project_BN", "bn", x, x, params=2 * pointwise, nontrainable=2 * pointwise)
        if in_c == pointwise and stride == 1:
            x = add(prefix + "add", "add", x, x)
        return x

    cfg = [  # (filters, stride, expansion) per block, Keras order
        (16, 1, 1),
        (24, 2, 6), (24, 1, 6),
        (32, 2, 6), (32, 1, 6), (32, 1, 6),
        (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
        (96, 1, 6), (96, 1, 6), (96, 1, 6),
        (160, 2, 6), (160, 1, 6), (160, 1, 6),
        (320, 1, 6),
    ]
    for i, (f, st, e) in enumerate(cfg):
        s = block(s, e, st, f, i)
    last = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    s = add("Conv_1", "conv", s, (s[0], s[1], last), k=1, stride=1, cin=s[2], cout=last,
            pads=(0, 0, 0, 0), params=s[2] * last)
    s = add("Conv_1_bn", "bn", s, s, params=2 * last, nontrainable=2 * last)
    s = add("out_relu", "relu", s, s)
    if include_head:
        n = len(L)
        add("global_average_pooling2d", "gap", s, (last,))
        add("dropout", "dropout", (last,), (last,))
        add("dense", "dense", (last,), (1,), cin=last, cout=1, params=last + 1)
        for d in L[n:]:
            d["index"] = None
    return L


def layer_macs(d):
    if d["kind"] == "conv":
        ho, wo, co = d["out_shape"]
        return ho * wo * co * d["k"] * d["k"] * d["cin"]
    if d["kind"] == "dwconv":
        ho, wo, c = d["out_shape"]
        return ho * wo * c * d["k"] * d["k"]
    if d["kind"] == "dense":
        return d["cin"] * d["cout"]
    return 0


def forward_macs(alpha=1.0, size=160):
    """MACs per image of base + head forward."""
    return sum(layer_macs(d) for d in mobilenet_v2_layers(alpha, size))


def trainable_layers(mode, alpha=1.0, size=160, fine_tune_at=100):
    """Names of weighted layers with trainable weights: mode 'frozen' (case 2: head only) or
    'finetune' (case 3: base layers with Keras index >= fine_tune_at, plus the head)."""
    out = []
    for d in mobilenet_v2_layers(alpha, size):
        if d["params"] == 0:
            continue
        if d["index"] is None or (mode == "finetune" and d["index"] >= fine_tune_at):
            out.append(d["name"])
    return out


def train_macs(mode, alpha=1.0, size=160, fine_tune_at=100):
    """MACs per image of one training step (forward + backward-data + backward-weights)."""
    layers = mobilenet_v2_layers(alpha, size)
    tr = set(trainable_layers(mode, alpha, size, fine_tune_at))
    fwd = sum(layer_macs(d) for d in layers)
    weighted = [d for d in layers if layer_macs(d)]
    first = next(i for i, d in enumerate(weighted) if d["name"] in tr)
    bwd_data = sum(layer_macs(d) for d in weighted[first + 1:])
    bwd_w = sum(layer_macs(d) for d in weighted if d["name"] in tr)
    return {"forward": fwd, "backward_data": bwd_data, "backward_weights": bwd_w,
            "total": fwd + bwd_data + bwd_w}


def catdog_layer_macs(layer):
    """MACs per image of one catdog layer, from its attributes and (fixed) output shape:
    Conv2D (groups), DepthwiseConv2D (depth_multiplier), SeparableConv2D, Dense; 0 else."""
    kind = type(layer).__name__
    out = getattr(layer, "output_shape", None) or ()
    if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D") and None in out:
        raise ValueError(f"{layer.name}: a free input size has no FLOP count")
    if kind == "Conv2D":
        kh, kw = layer.kernel_size
        cin = layer.input_shape[-1] // getattr(layer, "groups", 1)
        return out[0] * out[1] * out[2] * kh * kw * cin
    if kind == "DepthwiseConv2D":
        kh, kw = layer.kernel_size
        return out[0] * out[1] * out[2] * kh * kw
    if kind == "SeparableConv2D":
        kh, kw = layer.kernel_size
        c = layer.input_shape[-1] * layer.depth_multiplier
        return out[0] * out[1] * (c * kh * kw + c * out[2])
    if kind == "Dense":
        return layer.input_shape[-1] * layer.units
    return 0


def catdog_model_macs(model):
    """{"forward", "backward_data", "backward_weights", "train"} MACs per image of a catdog
    model as its trainable flags stand: backward-data runs from the first trainable weighted
    layer on (in the engine's layer order), backward-weights on the trainable ones."""
    flat, _ = model._flatten()
    weighted = [(layer, tr) for layer, _, tr, _ in flat if catdog_layer_macs(layer)]
    fwd = sum(catdog_layer_macs(l) for l, _ in weighted)
    first = next((i for i, (l, tr) in enumerate(weighted) if tr and l._weights), len(weighted))
    bwd_data = sum(catdog_layer_macs(l) for l, _ in weighted[first + 1:])
    bwd_w = sum(catdog_layer_macs(l) for l, tr in weighted if tr and l._weights)
    return {"forward": fwd, "backward_data": bwd_data, "backward_weights": bwd_w,
            "train": fwd + bwd_data + bwd_w}


def param_counts(alpha=1.0, size=160, mode=None, fine_tune_at=100, include_head=True):
    layers = mobilenet_v2_layers(alpha, size, include_head)
    total = sum(d["params"] + d["nontrainable"] for d in layers)
    if mode is None:
        return total
    tr = set(trainable_layers(mode, alpha, size, fine_tune_at))
    trainable = sum(d["params"] for d in layers if d["name"] in tr)
    return total, trainable, total - trainable


# ---------------------------------------------------------------- machine and peak


def cpu_info():
    """Model name, core count, frequency (MHz) and relevant ISA flags, from /proc/cpuinfo/lscpu."""
    info = {"model": platform.processor() or "unknown", "logical_cpus": os.cpu_count(),
            "mhz": None, "max_mhz": None, "flags": [], "vendor": None, "family": None}
    try:
        txt = open("/proc/cpuinfo").read()
        m = re.search(r"^model name\s*:\s*(.+)$", txt, re.M)
        if m:
            info["model"] = m.group(1).strip()
        m = re.search(r"^cpu MHz\s*:\s*([\d.]+)$", txt, re.M)
        if m:
            info["mhz"] = float(m.group(1))
        m = re.search(r"^flags\s*:\s*(.+)$", txt, re.M)
        flags = set(m.group(1).split()) if m else set()
        m = re.search(r"^vendor_id\s*:\s*(.+)$", txt, re.M)
        info["vendor"] = m.group(1).strip() if m else None
        m = re.search(r"^cpu family\s*:\s*(\d+)$", txt, re.M)
        info["family"] = int(m.group(1)) if m else None
        interesting = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                       "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "avx512_fp16"]
        info["flags"] = [f for f in interesting if f in flags]
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"^CPU max MHz:\s*([\d.]+)$", out, re.M)
        if m:
            info["max_mhz"] = float(m.group(1))
        m = re.search(r"^Core\(s\) per socket:\s*(\d+)$", out, re.M)
        s = re.search(r"^Socket\(s\):\s*(\d+)$", out, re.M)
        if m and s:
            info["physical_cores"] = int(m.group(1)) * int(s.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def peak_gflops(threads=None, info=None):
    """Estimated fp32 (and bf16) peak for `threads` cores.

    peak = cores × frequency × FLOP/cycle/core, FLOP/cycle = 2 (FMA) × fp32 lanes per FMA
    pipe × FMA pipes. Assumed pipes: two FMA pipes on every AVX2/AVX-512 x86 core of this era.
    Lanes: 16 on Intel AVX-512 (512-bit pipes); 8 on AMD Zen 4 (family 25), which runs AVX-512
    as two 256-bit halves, and 8 on AVX2-only cores. bf16 (AVX512_BF16 dot products) doubles
    the fp32 rate; AMX is not modelled. Frequency: `CPU max MHz` from lscpu if given, else
    the `cpu MHz` of /proc/cpuinfo (on a VM this is the nominal clock; boost is not counted).
    """
    info = info or cpu_info()
    cores = threads or info.get("physical_cores") or info["logical_cpus"] or 1
    mhz = info.get("max_mhz") or info.get("mhz") or 2000.0
    flags = set(info.get("flags", []))
    if "avx512f" in flags and not (info.get("vendor") == "AuthenticAMD"):
        lanes = 16
    elif "avx2" in flags or "avx512f" in flags:
        lanes = 8
    else:
        lanes = 4
    pipes = 2
    fpc = 2 * lanes * pipes
    fp32 = cores * mhz * 1e6 * fpc / 1e9
    bf16 = 2 * fp32 if "avx512_bf16" in flags or "amx_bf16" in flags else None
    how = ("%d cores x %.0f MHz x %d FLOP/cycle (2 FMA pipes x %d fp32 lanes x 2)"
           % (cores, mhz, fpc, lanes))
    return {"fp32_gflops": fp32, "bf16_gflops": bf16, "how": how, "cores": cores, "mhz": mhz}


def summary(alpha=1.0, size=160):
    f = forward_macs(alpha, size)
    return {
        "forward_macs": f,
        "case1_gflop_per_image": 2 * f / 1e9,
        "case2": train_macs("frozen", alpha, size),
        "case3": train_macs("finetune", alpha, size),
        "case2_gflop_per_image": 2 * train_macs("frozen", alpha, size)["total"] / 1e9,
        "case3_gflop_per_image": 2 * train_macs("finetune", alpha, size)["total"] / 1e9,
    }


def _selfcheck():
    base = mobilenet_v2_layers(1.0, 160, include_head=False)
    assert len(base) == 154, len(base)
    assert base[100]["name"] == "block_11_expand_relu", base[100]["name"]
    assert base[-1]["out_shape"] == (5, 5, 1280)
    assert param_counts(1.0, 160, include_head=False) == 2257984
    assert param_counts(1.0, 160, "frozen") == (2259265, 1281, 2257984)
    assert param_counts(1.0, 160, "finetune") == (2259265, 1862721, 396544), \
        param_counts(1.0, 160, "finetune")
    for a, n in [(0.35, 410208), (0.5, 706224), (0.75, 1382064), (1.3, 3766048)]:
        assert param_counts(a, 160, include_head=False) == n, (a, param_counts(a, 160, include_head=False))


if __name__ == "__main__":
    _selfcheck()
    s = summary()
    print("MobileNetV2 alpha 1.0, 160x160 (layer list checked against Keras parameter counts)")
    print("forward MACs/image: %.1f M  (%.3f GFLOP)" % (s["forward_macs"] / 1e6, s["case1_gflop_per_image"]))
    for c in ("case2", "case3"):
        t = s[c]
        print("%s train step MACs/image: fwd %.1f M + bwd-data %.1f M + bwd-weights %.1f M = %.1f M (%.3f GFLOP)"
              % (c, t["forward"] / 1e6, t["backward_data"] / 1e6, t["backward_weights"] / 1e6,
                 t["total"] / 1e6, 2 * t["total"] / 1e9))
    p = peak_gflops(2)
    print("peak (2 threads): fp32 %.1f GFLOP/s, bf16 %s  [%s]" % (p["fp32_gflops"], p["bf16_gflops"], p["how"]))
