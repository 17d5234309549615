"""PyTorch side: the same MobileNetV2 (Keras's exact architecture) written with torch.nn.

Run with benchmarks/.venv-torch/bin/python (torch 2.13.0 CPU build; torchvision is not
installed beside it). Eager mode, channels_last memory format (oneDNN-backed convolutions),
fp32. Keras semantics reproduced: Conv1 is TF "same" with stride 2 (pad bottom/right by 1 for
even sizes); stride-2 depthwise convs are preceded by ZeroPadding2D with Keras's correct_pad
(top/left 0, bottom/right 1 for even sizes); BN eps 1e-3; ReLU6; head GAP -> Dropout(0.2) ->
Linear(1280, 1). Weights are copied from the same Keras h5 (HWIO -> OIHW). The base is always
in eval mode (like `base_model(x, training=False)`): BN uses its moving statistics even when
its gamma/beta are trainable.

Case 4 loader: a background thread decodes the JPEGs with PIL (convert RGB, resize to 160x160
BILINEAR — PIL antialiases when downscaling, Keras does not; the speed is what matters here),
stacks them into uint8 batches of 32 (queue of 2 batches, one process). Each epoch reshuffles
(seeded) and decodes again, as Keras's image_dataset_from_directory does. Augmentation runs
on the batch inside the training step with torch ops, as Keras's layers do: random horizontal
flip, random rotation by U(-0.2, 0.2)·2π with bilinear sampling and reflection padding
(F.affine_grid + F.grid_sample). The validation set is split into test (first 6 batches of a
seeded shuffle) and validation (the other 26), fixed.

--net resnet50 | vgg16 (cases 1-3): Keras's ResNet50 and VGG16 (include_top=False) written
with torch.nn layer for layer, not torchvision's: torchvision's resnet50 is "v1.5" (the
stride-2 of a stage's first block on its 3x3 convolution, ~7% more FLOPs) and has no conv
biases, Keras's is v1 (stride on the block's first 1x1 convolution and the shortcut; conv
biases; BN eps 1.001e-5). VGG16 is the same in both (3x3 convs with bias, ReLU, 2x2 max
pools). Keras's "caffe" preprocess_input (BGR, minus the ImageNet mean) is the model's first
step, as catdog's lab puts it in the model. Seeded random weights (torch's default init; `--check-parity` copies Keras's from
the npz bench_tensorflow.py --net X --dump-reference writes). Fine-tuning: the layers of
the last stage (ResNet50's conv5_*, from conv5_block1_1_conv) / block (VGG16's block5_*, from
block5_conv1) train, as catdog's per-family default; BN stays in inference mode.
MobileNetV3 / EfficientNet: no torch side (torchvision's versions differ from Keras's).
"""
import time

_T_START = time.perf_counter()  # case 5 starts here (before `import torch`)

import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import flops  # noqa: E402

FRAMEWORK = "pytorch"  # "pytorch-compile" with --mode compile


def cold_inductor_cache():
    """Compile mode: inductor's on-disk caches (FX graphs, kernels) go to a fresh temporary
    folder, so compile_s is a cold compile, as a user's first run sees it, not a cache hit
    from an earlier benchmark run. Set TORCHINDUCTOR_CACHE_DIR to choose (and keep) one."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        import atexit
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="catdog-bench-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = d
        atexit.register(shutil.rmtree, d, True)
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


def import_torch(threads):
    try:
        import torch
    except ImportError as e:
        raise C.NotAvailable("cannot import torch (%s); run benchmarks/setup.sh" % e)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return torch


def define_model(torch):
    """Classes are defined after `import torch` so that module import stays stdlib-only."""
    nn = torch.nn
    F = torch.nn.functional

    class ConvBN(nn.Module):
        """[ZeroPad2d] -> Conv2d(bias=False) -> BN(eps=1e-3) -> [ReLU6]; Keras names kept."""

        def __init__(self, spec_conv, spec_bn, relu):
            super().__init__()
            cin, cout, k, s = spec_conv["cin"], spec_conv["cout"], spec_conv["k"], spec_conv["stride"]
            groups = cin if spec_conv["kind"] == "dwconv" else 1
            t, b, l, r = spec_conv.get("pad_before", spec_conv["pads"])
            if t == b and l == r:
                self.pad = None
                padding = (t, l)
            else:
                self.pad = nn.ZeroPad2d((l, r, t, b))
                padding = 0
            self.conv = nn.Conv2d(cin, cout, k, s, padding=padding, groups=groups, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.001)
            self.relu = relu
            self.keras_conv = spec_conv["name"]
            self.keras_bn = spec_bn["name"]
            self.keras_index = (spec_conv["index"], spec_bn["index"])

        def forward(self, x):
            if self.pad is not None:
                x = self.pad(x)
            x = self.bn(self.conv(x))
            return F.relu6(x) if self.relu else x

    class Block(nn.Module):
        def __init__(self, units, residual):
            super().__init__()
            self.units = nn.ModuleList(units)
            self.residual = residual

        def forward(self, x):
            y = x
            for u in self.units:
                y = u(y)
            return x + y if self.residual else y

    class MobileNetV2Keras(nn.Module):
        def __init__(self, alpha=1.0, size=160):
            super().__init__()
            spec = flops.mobilenet_v2_layers(alpha, size, include_head=True)
            by = {d["name"]: d for d in spec}
            feats = []

            def unit(conv, bn, relu, pad_name=None):
                c = dict(by[conv])
                if pad_name:  # the ZeroPadding2D before a stride-2 depthwise conv
                    c["pad_before"] = by[pad_name]["pads"]
                return ConvBN(c, by[bn], relu)

            feats.append(Block([unit("Conv1", "bn_Conv1", True)], False))
            i = 0
            while True:
                p = "block_%d_" % i if i else "expanded_conv_"
                if p + "depthwise" not in by:
                    break
                units = []
                if p + "expand" in by:
                    units.append(unit(p + "expand", p + "expand_BN", True))
                units.append(unit(p + "depthwise", p + "depthwise_BN", True,
                                  p + "pad" if p + "pad" in by else None))
                units.append(unit(p + "project", p + "project_BN", False))
                feats.append(Block(units, p + "add" in by))
                i += 1
            feats.append(Block([unit("Conv_1", "Conv_1_bn", True)], False))
            self.features = nn.Sequential(*feats)
            self.dropout = nn.Dropout(0.2)
            self.dense = nn.Linear(by["dense"]["cin"], 1)
            nn.init.xavier_uniform_(self.dense.weight)
            nn.init.zeros_(self.dense.bias)

        def units(self):
            for b in self.features:
                for u in b.units:
                    yield u

        def forward(self, x):
            """x: N×3×H×W (channels_last), pixel values 0..255; preprocess_input inside."""
            x = x / 127.5 - 1.0
            x = self.features(x)
            x = x.mean(dim=(2, 3))
            return self.dense(self.dropout(x))

        def load_keras_h5(self, path):
            import h5py
            import numpy as np
            with h5py.File(path, "r") as f:
                def get(layer):
                    g = f[layer]
                    names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
                    return {n.split("/")[-1].split(":")[0]: np.asarray(g[n]) for n in names}
                with torch.no_grad():
                    for u in self.units():
                        k = get(u.keras_conv)
                        w = k.get("kernel", k.get("depthwise_kernel"))
                        if "depthwise_kernel" in k:  # (kh, kw, C, 1) -> (C, 1, kh, kw)
                            w = np.transpose(w, (2, 3, 0, 1))
                        else:  # HWIO -> OIHW
                            w = np.transpose(w, (3, 2, 0, 1))
                        u.conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
                        b = get(u.keras_bn)
                        u.bn.weight.copy_(torch.from_numpy(b["gamma"]))
                        u.bn.bias.copy_(torch.from_numpy(b["beta"]))
                        u.bn.running_mean.copy_(torch.from_numpy(b["moving_mean"]))
                        u.bn.running_var.copy_(torch.from_numpy(b["moving_variance"]))

        def set_trainable(self, from_index):
            """from_index None: base frozen (case 2); else Keras rule: layers[from_index:]
            of the base trainable (case 3). The head is always trainable."""
            for u in self.units():
                ci, bi = u.keras_index
                for p in u.conv.parameters():
                    p.requires_grad_(from_index is not None and ci >= from_index)
                for p in u.bn.parameters():
                    p.requires_grad_(from_index is not None and bi >= from_index)
            for p in self.dense.parameters():
                p.requires_grad_(True)

        def train_mode(self):
            """Training as in the lab: dropout on, the base's BN in inference mode."""
            self.train()
            self.features.eval()

    def augment(x, gen):
        """RandomFlip('horizontal') + RandomRotation(0.2, fill_mode='reflect', bilinear)."""
        n = x.shape[0]
        flip = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        ang = (torch.rand(n, generator=gen) * 2 - 1) * 0.2 * 2 * math.pi
        c, s = torch.cos(ang), torch.sin(ang)
        z = torch.zeros_like(c)
        theta = torch.stack([torch.stack([c, -s, z], 1), torch.stack([s, c, z], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    class ResNet50Keras(nn.Module):
        """keras.applications.ResNet50(include_top=False) (v1): conv1 7x7/2 (pad 3, bias), BN,
        ReLU, max pool 3x3/2 (Keras pads 1 with zeros after a ReLU: the same as torch's -inf
        padding), stages conv2..conv5 of 3, 4, 6, 3 bottleneck blocks; the first block of a
        stage has a 1x1 shortcut conv, stride 2 (stage 1: 1) on both that and _1_conv."""
        BN_EPS = 1.001e-5

        def __init__(self):
            super().__init__()
            self.named = {}  # Keras layer name -> module (conv or bn)

            def conv(name, cin, cout, k, stride=1, pad=0):
                m = nn.Conv2d(cin, cout, k, stride, padding=pad, bias=True)
                self.named[name] = m
                return m

            def bn(name, c):
                m = nn.BatchNorm2d(c, eps=self.BN_EPS, momentum=0.01)
                self.named[name] = m
                return m

            self.stem = nn.Sequential(conv("conv1_conv", 3, 64, 7, 2, 3), bn("conv1_bn", 64),
                                      nn.ReLU(), nn.MaxPool2d(3, 2, padding=1))
            blocks, cin = [], 64
            for stage, (filters, n, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2),
                                                          (512, 3, 2)), start=2):
                for b in range(1, n + 1):
                    p = "conv%d_block%d" % (stage, b)
                    s_ = stride if b == 1 else 1
                    blk = nn.Module()
                    blk.short = (nn.Sequential(conv(p + "_0_conv", cin, 4 * filters, 1, s_),
                                               bn(p + "_0_bn", 4 * filters)) if b == 1 else None)
                    blk.body = nn.Sequential(
                        conv(p + "_1_conv", cin, filters, 1, s_), bn(p + "_1_bn", filters), nn.ReLU(),
                        conv(p + "_2_conv", filters, filters, 3, 1, 1), bn(p + "_2_bn", filters), nn.ReLU(),
                        conv(p + "_3_conv", filters, 4 * filters, 1), bn(p + "_3_bn", 4 * filters))
                    blocks.append(blk)
                    cin = 4 * filters
            self.blocks = nn.ModuleList(blocks)
            self.out_channels = cin

        def forward(self, x):
            x = self.stem(x)
            for blk in self.blocks:
                y = blk.body(x)
                x = F.relu(y + (blk.short(x) if blk.short is not None else x))
            return x

    class VGG16Keras(nn.Module):
        """keras.applications.VGG16(include_top=False): 13 3x3 "same" convs with bias + ReLU in
        five blocks, each ending in a 2x2/2 max pool."""

        def __init__(self):
            super().__init__()
            self.named = {}
            mods, cin = [], 3
            for b, (c, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
                for i in range(1, n + 1):
                    m = nn.Conv2d(cin, c, 3, 1, padding=1, bias=True)
                    self.named["block%d_conv%d" % (b, i)] = m
                    mods += [m, nn.ReLU()]
                    cin = c
                mods.append(nn.MaxPool2d(2, 2))
            self.features = nn.Sequential(*mods)
            self.out_channels = cin

        def forward(self, x):
            return self.features(x)

    class KerasNet(nn.Module):
        """The lab's model on a ResNet50 / VGG16 base: Keras's "caffe" preprocess_input (RGB
        -> BGR, minus the ImageNet BGR mean) -> base (eval mode: BN on its moving statistics,
        as base_model(x, training=False)) -> GAP -> Dropout(0.2) -> Linear(C, 1)."""
        CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

        def __init__(self, net):
            super().__init__()
            self.features = {"resnet50": ResNet50Keras, "vgg16": VGG16Keras}[net]()
            self.net = net
            self.stage = {"resnet50": "conv5_", "vgg16": "block5_"}[net]
            self.dropout = nn.Dropout(0.2)
            self.dense = nn.Linear(self.features.out_channels, 1)
            nn.init.xavier_uniform_(self.dense.weight)
            nn.init.zeros_(self.dense.bias)
            self.register_buffer("mean", torch.tensor(self.CAFFE_MEAN_BGR).reshape(1, 3, 1, 1))

        def preprocess(self, x):
            """x: N×3×H×W RGB, 0..255 -> BGR minus the mean (Keras's "caffe" mode)."""
            return x.flip(1) - self.mean

        def forward(self, x):
            x = self.features(self.preprocess(x))
            x = x.mean(dim=(2, 3))
            return self.dense(self.dropout(x))

        def set_trainable(self, from_index):
            """from_index None: base frozen (case 2); else the family's default fine-tuning
            layers train (the last stage / block: the layers at and after Keras index
            from_index, conv5_block1_1_conv = 143 / block5_conv1 = 15)."""
            for name, m in self.features.named.items():
                for p in m.parameters():
                    p.requires_grad_(from_index is not None and name.startswith(self.stage))
            for p in self.dense.parameters():
                p.requires_grad_(True)

        def train_mode(self):
            self.train()
            self.features.eval()

        def load_keras_npz(self, ref):
            """Weights from bench_tensorflow.py --dump-reference ("w:<layer>:<i>", Keras's
            get_weights order: conv kernel HWIO + bias; BN gamma, beta, mean, variance)."""
            import numpy as np
            with torch.no_grad():
                for name, m in self.features.named.items():
                    w = [ref["w:%s:%d" % (name, i)] for i in range(4 if isinstance(m, nn.BatchNorm2d) else 2)]
                    if isinstance(m, nn.BatchNorm2d):
                        for t, v in zip((m.weight, m.bias, m.running_mean, m.running_var), w):
                            t.copy_(torch.from_numpy(np.asarray(v)))
                    else:
                        m.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.transpose(w[0], (3, 2, 0, 1)))))
                        m.bias.copy_(torch.from_numpy(np.asarray(w[1])))

    MobileNetV2Keras.keras_nets = {"resnet50": KerasNet, "vgg16": KerasNet}
    return MobileNetV2Keras, augment


def n_trainable(model):
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def random_batch(torch, n, seed=0, size=C.SIZE):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, size, size, 3, generator=g) * 255).permute(0, 3, 1, 2)  # channels_last
    y = torch.randint(0, 2, (n, 1), generator=g).float()
    return x, y


class Trainer:
    def __init__(self, torch, model, augment, opt):
        self.torch, self.model, self.augment, self.opt = torch, model, augment, opt
        self.loss_fn = torch.nn.BCEWithLogitsLoss()
        self.gen = torch.Generator().manual_seed(C.SEED)

    def step(self, x, y):
        self.model.train_mode()
        self.opt.zero_grad(set_to_none=True)
        logits = self.model(self.augment(x, self.gen).contiguous(memory_format=self.torch.channels_last))
        loss = self.loss_fn(logits, y)
        loss.backward()
        self.opt.step()
        return loss.detach(), ((logits.detach() > 0).float() == y).float().mean()


def make_optimizer(torch, model, which):
    params = [p for p in model.parameters() if p.requires_grad]
    if which == "adam":  # Keras Adam defaults: beta 0.9/0.999, eps 1e-7
        return torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-7)
    return torch.optim.RMSprop(params, lr=1e-5, alpha=0.9, eps=1e-7, momentum=0.0)


# ------------------------------------------------------------------ case 4 data loading


def list_images(directory):
    classes = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
    items = []
    for ci, c in enumerate(classes):
        for fn in sorted(os.listdir(os.path.join(directory, c))):
            if fn.lower().endswith((".jpg", ".jpeg", ".png", ".bmp", ".gif")):
                items.append((os.path.join(directory, c, fn), ci))
    return items, classes


def batches(items, shuffle_seed=None, prefetch=2):
    """Yield (uint8 N×160×160×3 array, float32 N×1 labels); decoding on a background thread."""
    import queue
    import threading
    import numpy as np
    from PIL import Image
    order = list(range(len(items)))
    if shuffle_seed is not None:
        np.random.default_rng(shuffle_seed).shuffle(order)
    q = queue.Queue(maxsize=prefetch)

    def work():
        for s in range(0, len(order), C.BATCH):
            idx = order[s:s + C.BATCH]
            xb = np.empty((len(idx), C.SIZE, C.SIZE, 3), np.uint8)
            yb = np.empty((len(idx), 1), np.float32)
            for j, i in enumerate(idx):
                p, label = items[i]
                with Image.open(p) as im:
                    xb[j] = np.asarray(im.convert("RGB").resize((C.SIZE, C.SIZE), Image.BILINEAR))
                yb[j, 0] = label
            q.put((xb, yb))
        q.put(None)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    while True:
        b = q.get()
        if b is None:
            break
        yield b
    t.join()


def main():
    global FRAMEWORK
    a = C.parse_args(FRAMEWORK)
    compiled = a.mode == "compile"
    if compiled:
        FRAMEWORK = "pytorch-compile"
    R = C.Result(FRAMEWORK, a)
    if compiled:
        R.d["inductor_cache_dir"] = cold_inductor_cache()  # before `import torch`
    st = C.settings(a.quick, a.net)
    reps = min(a.repeats, st["max_repeats"] or a.repeats)
    net, size = a.net, a.size
    if net not in C.TORCH_NETS:
        R.unavailable("no faithful torch version of Keras's %s: torchvision's differs from Keras's "
                      "(README: \"The sides\"), so it is not run" % C.NETS[net]["builder"])
    try:
        torch = import_torch(a.threads)
    except C.NotAvailable as e:
        R.unavailable(str(e))
    MobileNetV2Keras, augment = define_model(torch)
    R.d["versions"] = {"torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
                       "num_threads": torch.get_num_threads(),
                       "mode": ("torch.compile (inductor, default mode, cold cache), channels_last, fp32" if compiled
                                else "eager, channels_last, fp32")}
    torch.manual_seed(C.SEED)
    fl = flops.summary(C.ALPHA, C.SIZE) if net == "mobilenetv2" else {}  # FLOPs: MobileNetV2's only
    if net != "mobilenetv2":  # MobileNetV2's RESULTS.md lines stay as they were
        R.d["versions"]["net"] = net
    fine_tune_at = C.FINE_TUNE_AT if net == "mobilenetv2" else {"resnet50": 143, "vgg16": 15}[net]

    def build(weights=True):
        if net != "mobilenetv2":  # seeded random weights (torch's init), see the module doc
            torch.manual_seed(C.SEED)
            return MobileNetV2Keras.keras_nets[net](net).to(memory_format=torch.channels_last)
        m = MobileNetV2Keras(C.ALPHA, C.SIZE)
        if weights:
            m.load_keras_h5(a.weights)
        return m.to(memory_format=torch.channels_last)

    if a.check_parity:
        check_parity(torch, build, a, R)
        return
    if a.export_onnx:
        export_onnx(torch, build, a, R)
        return
    if compiled and (4 in a.case_list or 5 in a.case_list):
        R.d["errors"].update({str(c): "not available: torch.compile mode runs cases 1-3 only"
                              for c in a.case_list if c in (4, 5)})
        a.case_list = [c for c in a.case_list if c in (1, 2, 3)]

    def maybe_compile(m):
        """Eager: the module itself. Compile: a fresh torch.compile wrapper (dynamo caches reset,
        so each case's compile time is its own)."""
        if not compiled:
            return m
        torch._dynamo.reset()
        return torch.compile(m, backend="inductor", dynamic=False)

    def first_call(fn):
        """Compile mode: the first call compiles; its wall time is reported apart as compile_s
        (it is not part of the warm-up or the timed steps)."""
        if not compiled:
            return None
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def case5():
        build(True)
        t = time.perf_counter() - _T_START
        return {"seconds": t, "what": "import torch + build MobileNetV2 (torch.nn) + copy h5 weights (h5py)"}

    if 5 in a.case_list:
        R.run_case(5, case5)

    shared = {}

    def model():
        if "m" not in shared:
            shared["m"] = build(True)
        return shared["m"]

    def case1():
        m = model()
        m.eval()
        cm = maybe_compile(m)
        x32, _ = random_batch(torch, C.BATCH, size=size)
        x1, _ = random_batch(torch, 1, seed=1, size=size)

        def run(x):
            with torch.inference_mode():
                cm(x)
        c32 = first_call(lambda: run(x32))
        t32 = C.time_steps(lambda: run(x32), st["warmup"], st["iters"], reps)
        c1 = first_call(lambda: run(x1))  # dynamic=False: batch 1 is its own graph
        t1 = C.time_steps(lambda: run(x1), st["warmup1"], st["iters1"], reps)
        pre = "torch.compile(model); " if compiled else ""
        r = C.throughput_record(t32, C.BATCH, pre + "model.eval(); inference_mode; model(x)",
                                fl.get("case1_gflop_per_image"))
        r["batch1"] = C.latency_record(t1, pre + "inference_mode; model(x[None])")
        if compiled:
            r["compile_s"] = c32
            r["batch1"]["compile_s"] = c1
            with torch.inference_mode():  # the compiled graph computes what eager does
                want, got = m(x32), cm(x32)
            r["vs_eager_rel_err"] = float((got - want).abs().max() / want.abs().max())
        return r

    def train_case(from_index, opt_name, gflop, what):
        m = model()
        m.set_trainable(from_index)
        opt = make_optimizer(torch, m, opt_name)
        tr = Trainer(torch, maybe_compile(m), augment, opt)
        x, y = random_batch(torch, C.BATCH, size=size)
        c = first_call(lambda: tr.step(x, y))
        t = C.time_steps(lambda: tr.step(x, y), st["warmup"], st["iters"], reps)
        r = C.throughput_record(t, C.BATCH, ("torch.compile(model) forward+backward, eager "
                                             "augment and optimizer; " if compiled else "") + what, gflop)
        r["trainable_params"] = n_trainable(m)
        if compiled:
            r["compile_s"] = c
        return r

    def case2():
        return train_case(None, "adam", fl.get("case2_gflop_per_image"),
                          "augment + forward + BCEWithLogits + backward + Adam 1e-4 (head only)")

    def case3():
        return train_case(fine_tune_at, "rmsprop", fl.get("case3_gflop_per_image"),
                          "augment + forward + BCEWithLogits + backward + RMSprop 1e-5 (from layer %d)"
                          % fine_tune_at)

    def case4():
        return lab(torch, build, augment, a)

    for c, fn in ((1, case1), (2, case2), (3, case3), (4, case4)):
        if c in a.case_list:
            C.log(FRAMEWORK, "case", c)
            R.run_case(c, fn)
    R.write(final=True)


def lab(torch, build, augment, a):
    import numpy as np
    t0 = time.perf_counter()
    train_items, classes = list_images(os.path.join(a.data, "train"))
    val_items, _ = list_images(os.path.join(a.data, "validation"))
    order = np.random.default_rng(C.SEED).permutation(len(val_items))
    val_batches = -(-len(val_items) // C.BATCH)
    n_test = (val_batches // 5) * C.BATCH
    test_items = [val_items[i] for i in order[:n_test]]
    val_items = [val_items[i] for i in order[n_test:]]
    if a.quick:
        train_items = [train_items[i] for i in np.random.default_rng(0).permutation(len(train_items))[:3 * C.BATCH]]
        val_items, test_items = val_items[:2 * C.BATCH], test_items[:C.BATCH]
    m = build(True)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")

    def to_tensor(xb):
        return torch.from_numpy(xb).permute(0, 3, 1, 2).float()  # NHWC memory = channels_last

    def evaluate(items):
        m.eval()
        n, tot_loss, correct = 0, 0.0, 0.0
        with torch.inference_mode():
            for xb, yb in batches(items):
                logits = m(to_tensor(xb))
                y = torch.from_numpy(yb)
                tot_loss += float(loss_fn(logits, y))
                correct += float(((logits > 0).float() == y).sum())
                n += len(yb)
        return tot_loss / n, correct / n

    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}

    def fit(tr, epochs, initial_epoch):
        for ep in range(initial_epoch, epochs):
            te = time.perf_counter()
            losses, accs = [], []
            for xb, yb in batches(train_items, shuffle_seed=C.SEED + ep):
                l, acc = tr.step(to_tensor(xb), torch.from_numpy(yb))
                losses.append(float(l))
                accs.append(float(acc))
            vl, va = evaluate(val_items)
            history["loss"].append(sum(losses) / len(losses))
            history["accuracy"].append(sum(accs) / len(accs))
            history["val_loss"].append(vl)
            history["val_accuracy"].append(va)
            C.log("epoch %d/%d %.1fs loss %.4f acc %.4f val_loss %.4f val_acc %.4f"
                  % (ep + 1, epochs, time.perf_counter() - te, history["loss"][-1],
                     history["accuracy"][-1], vl, va))

    ie, fe = (1, 1) if a.quick else (a.initial_epochs, a.fine_tune_epochs)
    m.set_trainable(None)
    t1 = time.perf_counter()
    fit(Trainer(torch, m, augment, make_optimizer(torch, m, "adam")), ie, 0)
    t2 = time.perf_counter()
    m.set_trainable(C.FINE_TUNE_AT)
    fit(Trainer(torch, m, augment, make_optimizer(torch, m, "rmsprop")), ie + fe, ie)
    t3 = time.perf_counter()
    tl, ta = evaluate(test_items)
    t4 = time.perf_counter()
    return {"wall_s": t4 - t0, "setup_s": t1 - t0, "phase1_s": t2 - t1, "phase2_s": t3 - t2,
            "evaluate_s": t4 - t3, "epochs": [ie, fe], "quick": a.quick,
            "peak_rss_mb": C.peak_rss_mb(), "final_val_accuracy": history["val_accuracy"][-1],
            "test_accuracy": ta, "test_loss": tl,
            "what": "PIL decode+resize on a prefetch thread (batch 32, reshuffled per epoch), "
                    "flip+rotation on the batch, %d epochs Adam + %d epochs RMSprop from layer 100, "
                    "validation each epoch, test evaluation" % (ie, fe)}


def export_onnx(torch, build, a, R):
    """The benchmark's network (eval mode, ImageNet base + the seeded head) as ONNX with a
    dynamic batch axis (legacy TorchScript exporter, opset 17), plus <path>.npz holding an
    input batch and this network's eager logits, for the ONNX Runtime side's parity check."""
    import numpy as np
    if a.onnx_site and a.onnx_site not in sys.path:
        sys.path.append(a.onnx_site)  # after this venv's own packages: its numpy stays first
    m = build(True)
    m.eval()
    x, _ = random_batch(torch, 4, seed=7)
    t0 = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(m, (x.contiguous(),), a.export_onnx, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    t_export = time.perf_counter() - t0
    with torch.inference_mode():
        logits = m(x).numpy()
    np.savez(a.export_onnx + ".npz", x=x.contiguous().numpy(), logits=logits)
    R.d["export"] = {"seconds": t_export, "path": a.export_onnx, "torch": torch.__version__,
                     "how": "torch.onnx.export(dynamo=False, opset 17), dynamic batch"}
    C.log("exported", a.export_onnx, "in %.1f s" % t_export)
    R.write(final=True)


def check_parity(torch, build, a, R):
    """Compare with Keras on the same weights and input (npz from bench_tensorflow.py)."""
    import numpy as np
    r = np.load(a.check_parity)
    m = build(True)
    if a.net != "mobilenetv2":
        m.load_keras_npz(r)
    with torch.no_grad():
        m.dense.weight.copy_(torch.from_numpy(r["dense_kernel"].T.copy()))
        m.dense.bias.copy_(torch.from_numpy(r["dense_bias"]))
    m.eval()
    x = torch.from_numpy(r["x"]).permute(0, 3, 1, 2)
    with torch.inference_mode():
        pre = x / 127.5 - 1.0 if a.net == "mobilenetv2" else m.preprocess(x)
        feats = m.features(pre).permute(0, 2, 3, 1).numpy()
        logits = m(x).numpy()
    ref_b, ref_l = r["base_out"], r["logits"]
    err_b = float(np.abs(feats - ref_b).max() / np.abs(ref_b).max())
    err_l = float(np.abs(logits - ref_l).max() / np.abs(ref_l).max())
    out = {"base_output_rel_err": err_b, "logits_rel_err": err_l,
           "base_output_max_abs_err": float(np.abs(feats - ref_b).max()),
           "logits_torch": logits.ravel().tolist(), "logits_keras": ref_l.ravel().tolist(),
           "ok": err_b < 1e-4 and err_l < 1e-4,
           "definition": "max|torch - keras| / max|keras| over the tensor"}
    if a.net != "mobilenetv2":
        # torch trains the layers named like the last stage / block; Keras trains
        # base.layers[at:]: the same set when every weighted layer is on the same side of `at`
        names = [str(x) for x in r["layer_names"]]
        at = C.fine_tune_index(a.net, names)
        wrong = [n for i, n in enumerate(names) if n in m.features.named
                 and (i >= at) != n.startswith(m.stage)]
        out["fine_tune_rule"] = ("layers %s.. = Keras's layers[%d:] (%s)" % (m.stage, at, names[at])
                                 if not wrong else "differs at %s" % ", ".join(wrong))
        out["ok"] = out["ok"] and not wrong
    R.d["parity"] = out
    C.log("parity:", out)
    R.write(final=True)


if __name__ == "__main__":
    main()
