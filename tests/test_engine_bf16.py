"""bf16 mode (catdog.config.set_precision("bf16")): the frozen part's fused convolutions run
on bfloat16 activations and folded weights; the trainable blocks' convolutions (forward,
backward-data, backward-weights) run on bfloat16 operands with float32 accumulation; everything
a caller reads, the weight gradients, the master weights and the optimizer stay float32.

Stated tolerances:
- against an exact NumPy emulation of the bf16 arithmetic (inputs, folded weights and the
  tensors between fused blocks rounded to bf16, sums in float32): 1e-5 of the output's range;
- the trainable blocks' gradients against the same kind of emulation (each convolution's
  operands rounded to bf16: the block's source and folded kernel forward, du = dy * mask
  backward; sums in float64 there, float32 in oneDNN): 1e-5 of each gradient's range;
- against fp32 on the ImageNet base with real images: pooled features at cosine >= 0.99 and
  the same predicted class for a head trained on fp32 features;
- a fine-tuning step of MobileNetV2 (random weights, blocks 11-16 trainable) against fp32:
  each gradient tensor at cosine > 0.9 (measured >= 0.96; with the trainable blocks in fp32
  and only the frozen part in bf16 the same model measured 0.963: the frozen part's rounding
  dominates, as bf16 keeps 8 significant bits through 60 convolutions).
"""
import numpy as np
import pytest

import catdog
from catdog import layers
from conftest import needs_shared_data, needs_shared_weights, shared_dir, training_step_gradients


def assert_names_this_cpu(message):
    """The refusal names the ISA oneDNN runs here by name (not as an enum's hex value), and on
    Linux that name agrees with the CPU's flags."""
    assert "0x" not in message, message
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return
    if "avx512f" not in flags and "avx2" in flags:
        assert "runs AVX2" in message, message
    elif "avx512f" in flags and "avx512_bf16" not in flags:
        assert "runs AVX512" in message or "runs AVX-512" in message, message


@pytest.fixture
def bf16():
    try:
        catdog.config.set_precision("bf16")
    except ValueError as e:
        assert "AVX512-BF16" in str(e) and catdog.config.get_precision() == "fp32"
        assert_names_this_cpu(str(e))
        pytest.skip(f"bf16 mode refused on this CPU, as it should be: {e}")
    yield
    catdog.config.set_precision("fp32")


def to_bf16(a):
    """Round float32 to the nearest bfloat16 (ties to even), returned as float32."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def fold(conv, bn):
    """Keras HWIO kernel and BN weights -> the folded kernel and bias of the fused block."""
    gamma, beta, mean, var = bn.get_weights()
    s = gamma / np.sqrt(var + bn.epsilon)
    return conv.get_weights()[0] * s, beta - mean * s


def pointwise(x, w, b):
    """1x1 convolution in float64 on (n, h, w, ci) with HWIO (1, 1, ci, co)."""
    return np.einsum("nhwc,co->nhwo", x.astype(np.float64), w[0, 0].astype(np.float64)) + b


def two_block_model(rng):
    """x -> [conv_a bn_a relu6] -> [conv_b bn_b + skip(relu_a)]: the first block's output is
    read only by fused blocks (as source and as the Add's skip), so bf16 mode stores it in
    bf16; the Add's output is the model's, kept in float32."""
    inputs = catdog.Input((6, 5, 8))
    conv_a, bn_a = layers.Conv2D(16, 1, use_bias=False, name="conv_a"), layers.BatchNormalization(name="bn_a")
    conv_b, bn_b = layers.Conv2D(16, 1, use_bias=False, name="conv_b"), layers.BatchNormalization(name="bn_b")
    a = layers.ReLU(6.0, name="relu_a")(bn_a(conv_a(inputs)))
    out = layers.Add(name="add")([bn_b(conv_b(a)), a])
    model = catdog.Model(inputs, out)
    for bn in (bn_a, bn_b):
        bn.set_weights([rng.uniform(0.5, 2, 16), rng.normal(0, 0.5, 16), rng.normal(0, 0.5, 16),
                        rng.uniform(0.5, 2, 16)])
    for conv in (conv_a, conv_b):
        conv.set_weights([rng.normal(0, 0.5, conv.get_weights()[0].shape)])
    model.trainable = False
    return model, (conv_a, bn_a, conv_b, bn_b)


def test_fused_blocks_match_a_bf16_emulation(bf16):
    rng = np.random.default_rng(3)
    model, (conv_a, bn_a, conv_b, bn_b) = two_block_model(rng)
    x = rng.uniform(-2, 2, (3, 6, 5, 8)).astype(np.float32)
    got = model.predict_on_batch(x)

    wa, ba = fold(conv_a, bn_a)
    wb, bb = fold(conv_b, bn_b)
    a = to_bf16(np.clip(pointwise(to_bf16(x), to_bf16(wa), ba), 0, 6).astype(np.float32))
    emulated = pointwise(a, to_bf16(wb), bb) + a
    a32 = np.clip(pointwise(x, wa, ba), 0, 6)
    exact = pointwise(a32, wb, bb) + a32

    scale = np.abs(emulated).max()
    assert np.abs(got - emulated).max() <= 1e-5 * scale
    assert np.abs(got - exact).max() > 1e-3 * scale  # it did round: not the fp32 answer


def test_bf16_close_to_fp32_and_back_to_exact(bf16):
    base = catdog.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35,
                                           include_top=False, weights=None)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 64, 64, 3)).astype(np.float32)
    half = base.predict_on_batch(x)
    catdog.config.set_precision("fp32")
    fp32 = base.predict_on_batch(x)
    err = float(np.abs(half - fp32).max() / np.abs(fp32).max())
    assert 0 < err < 5e-2, err  # rounded through 52 convolutions: different, close
    np.testing.assert_array_equal(base.predict_on_batch(x), fp32)  # fp32 again: exact


def test_precision_names_are_checked():
    with pytest.raises(ValueError, match="fp32' or 'bf16"):
        catdog.config.set_precision("fp16")
    assert catdog.config.get_precision() == "fp32"


def test_bf16_training_is_deterministic_and_trains_in_fp32(bf16):
    """A transfer step in bf16: the frozen base in bf16, the head's gradients and update in
    float32 - same bits twice, and close to the fp32 step."""
    def run():
        catdog.random.set_seed(4)
        base, _ = two_block_model(np.random.default_rng(1))  # frozen: fused, bf16
        inputs = catdog.Input((6, 5, 8))
        out = layers.Dense(1)(layers.GlobalAveragePooling2D()(base(inputs, training=False)))
        model = catdog.Model(inputs, out)
        model.compile(optimizer=catdog.optimizers.Adam(1e-2),
                      loss=catdog.losses.BinaryCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x = rng.uniform(-2, 2, (8, 6, 5, 8)).astype(np.float32)
        y = (rng.uniform(size=8) > 0.5).astype(np.float32)
        losses = [model.train_on_batch(x, y) for _ in range(3)]
        return losses, model.layers[-1].get_weights()[0]

    l1, w1 = run()
    l2, w2 = run()
    assert l1 == l2 and np.array_equal(w1, w2)
    catdog.config.set_precision("fp32")
    l32, w32 = run()
    assert l1 != l32
    np.testing.assert_allclose(l1, l32, rtol=2e-2)
    assert np.abs(w1 - w32).max() <= 0.05 * np.abs(w32).max()


@needs_shared_weights
@needs_shared_data
def test_imagenet_features_in_bf16_agree_with_fp32(bf16):
    from PIL import Image

    root = shared_dir() / "data" / "cats_and_dogs_filtered" / "validation"
    files = sorted(root.glob("*/*.jpg"))[::25][:40]
    labels = np.array([f.parent.name == "dogs" for f in files], np.float32)
    x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((160, 160)), np.float32)
                  for f in files])
    x = catdog.applications.mobilenet_v2.preprocess_input(x)
    weights = shared_dir() / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False,
                                           weights=str(weights))
    half = base.predict(x, verbose=0).mean(axis=(1, 2))
    catdog.config.set_precision("fp32")
    full = base.predict(x, verbose=0).mean(axis=(1, 2))
    cos = (half * full).sum(1) / np.linalg.norm(half, axis=1) / np.linalg.norm(full, axis=1)
    assert cos.min() >= 0.99, cos.min()
    # nearest class centroid (centroids from the fp32 features): the same answers in bf16
    dog, cat = full[labels == 1].mean(0), full[labels == 0].mean(0)
    def says_dog(f):
        return np.linalg.norm(f - dog, axis=1) < np.linalg.norm(f - cat, axis=1)
    assert (says_dog(full) == labels).mean() >= 0.9  # the probe itself works
    assert np.array_equal(says_dog(half), says_dog(full))


@pytest.mark.parametrize("size,alpha,batch", [(75, 0.5, 1), (33, 0.35, 3), (96, 1.0, 2)])
def test_bf16_any_size_and_batch(bf16, size, alpha, batch):
    """Odd sizes (symmetric padding), batch 1 and an epoch's partial last batch: the bf16 plans
    build and stay close to fp32; switching back rebuilds exact fp32 plans."""
    catdog.random.set_seed(2)
    base = catdog.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha,
                                           include_top=False, weights=None)
    x = np.random.default_rng(1).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    half = base.predict(x, batch_size=2, verbose=0)
    catdog.config.set_precision("fp32")
    full = base.predict(x, batch_size=2, verbose=0)
    assert half.shape == full.shape
    err = float(np.abs(half - full).max() / np.abs(full).max())
    assert 0 < err < 5e-2, err


def test_bf16_micro_batches_match_small_batches(bf16):
    """Batch 20 runs the frozen prefix in micro-batches of 8, 8 and 4: the same answers as
    batches of 4 (each sample's arithmetic does not depend on its neighbours)."""
    catdog.random.set_seed(2)
    base = catdog.applications.MobileNetV2(input_shape=(48, 48, 3), alpha=0.35,
                                           include_top=False, weights=None)
    x = np.random.default_rng(1).uniform(-1, 1, (20, 48, 48, 3)).astype(np.float32)
    whole = base.predict_on_batch(x)
    parts = np.concatenate([base.predict_on_batch(x[i:i + 4]) for i in range(0, 20, 4)])
    np.testing.assert_allclose(whole, parts, rtol=1e-3, atol=1e-3 * float(np.abs(parts).max()))


def trainable_blocks_model(rng):
    """x (6, 6, 8) -> [conv_a bn_a relu6] -> pad -> [depthwise 3x3 stride 2, bn_d relu6] ->
    [conv_b bn_b] -> GAP -> Dense(1), all trainable with the BNs in inference mode: three
    trainable blocks (pointwise and depthwise; ReLU6 and BN tails), MobileNetV2's kinds."""
    inputs = catdog.Input((6, 6, 8))
    conv_a, bn_a = layers.Conv2D(16, 1, use_bias=False, name="conv_a"), layers.BatchNormalization(name="bn_a")
    dw, bn_d = (layers.DepthwiseConv2D(3, strides=2, use_bias=False, name="dw"),
                layers.BatchNormalization(name="bn_d"))
    conv_b, bn_b = layers.Conv2D(8, 1, use_bias=False, name="conv_b"), layers.BatchNormalization(name="bn_b")
    a = layers.ReLU(6.0, name="relu_a")(bn_a(conv_a(inputs), training=False))
    a = layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(a)
    d = layers.ReLU(6.0, name="relu_d")(bn_d(dw(a), training=False))
    b = bn_b(conv_b(d), training=False)
    dense = layers.Dense(1, name="dense")
    model = catdog.Model(inputs, dense(layers.GlobalAveragePooling2D()(b)))
    for bn in (bn_a, bn_d, bn_b):
        c = bn.get_weights()[0].shape[0]
        bn.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c),
                        rng.uniform(0.5, 2, c)])
    for conv in (conv_a, dw, conv_b):
        conv.set_weights([rng.normal(0, 0.5, conv.get_weights()[0].shape)])
    dense.set_weights([rng.normal(0, 1, (8, 1)), rng.normal(0, 1, 1)])
    return model


def pointwise_conv(x, w):
    """(n, h, w, ci) x (ci, co) in float64."""
    return np.einsum("nhwc,co->nhwo", x.astype(np.float64), w.astype(np.float64))


def depthwise_windows(x, stride=2):
    """(n, h, w, c) -> (3, 3, n, oh, ow, c): the input under each tap of a 3x3 valid window."""
    oh, ow = (x.shape[1] - 3) // stride + 1, (x.shape[2] - 3) // stride + 1
    return np.stack([np.stack([x[:, i:i + stride * oh:stride, j:j + stride * ow:stride]
                               for j in range(3)]) for i in range(3)]).astype(np.float64)


def emulate_trainable_blocks(model, x, y):
    """The bf16 training step of trainable_blocks_model in NumPy: each convolution's operands
    rounded to bf16 as oneDNN gets them (block source and folded kernel forward; du and the
    folded kernel backward-data; source and du backward-weights), the tensors between layers
    float32 except where the plan stores a block's output and its gradient as bf16, sums in
    float64. The BN folds as conv_fused.c: s = gamma / sqrt(var + eps) in
    float32, W' = bf16(W * s), dW = dW' * s, dgamma = (sum W * dW' - mean * dbeta) / sqrt(var + eps)."""
    f32, f64 = np.float32, np.float64
    L = {layer.name: layer for layer in model.layers}
    grads = {}

    def fold(conv, bn):
        """Kernel, folded kernel, folded bias and the BN scale s, shaped to multiply the kernel:
        HWIO (.., co) for Conv2D, (3, 3, c, 1) for DepthwiseConv2D."""
        gamma, beta, mean, var = bn.get_weights()
        s = gamma / np.sqrt(var + f32(bn.epsilon))
        w = conv.get_weights()[0]
        s_k = s[:, None] if conv.name == "dw" else s
        return w, to_bf16(w * s_k), beta - mean * s, s_k

    def finish(conv, bn, w, s_k, dwf, du):
        _, _, mean, var = bn.get_weights()
        dbeta = du.astype(f64).sum((0, 1, 2))
        grads[conv.name + "/" + conv._weights[0][0]] = dwf.astype(f32) * s_k
        grads[bn.name + "/beta"] = dbeta
        per_channel = (dwf * w).reshape(-1, len(dbeta)).sum(0)  # both layouts: channel-major last
        grads[bn.name + "/gamma"] = (per_channel - mean * dbeta) / np.sqrt(var.astype(f64) + bn.epsilon)

    wa, wfa, bfa, sa = fold(L["conv_a"], L["bn_a"])
    wd, wfd, bfd, sd = fold(L["dw"], L["bn_d"])
    wb, wfb, bfb, sb = fold(L["conv_b"], L["bn_b"])
    xa = to_bf16(x)
    ya = np.clip(pointwise_conv(xa, wfa[0, 0]) + bfa, 0, 6).astype(f32)
    xd = to_bf16(np.pad(ya, ((0, 0), (0, 1), (0, 1), (0, 0))))
    win = depthwise_windows(xd)
    # the depthwise block's output is read only by conv_b's block: stored as bf16, so its own
    # ReLU6 mask reads the bf16 value (and its gradient is conv_b's bf16 backward-data output)
    yd = to_bf16(np.clip(np.einsum("ijnhwc,ijc->nhwc", win, wfd[..., 0].astype(f64)) + bfd, 0, 6))
    xb = yd
    out = (pointwise_conv(xb, wfb[0, 0]) + bfb).astype(f32)
    wdense, bdense = L["dense"].get_weights()
    pooled = out.astype(f64).mean((1, 2))
    dlogit = (1 / (1 + np.exp(-(pooled @ wdense + bdense)[:, 0])) - y) / len(x)
    grads["dense/kernel"] = pooled.T @ dlogit[:, None]
    grads["dense/bias"] = dlogit.sum(keepdims=True)
    dout = (dlogit[:, None] * wdense[:, 0])[:, None, None, :] / (out.shape[1] * out.shape[2])

    dub = to_bf16(np.broadcast_to(dout, out.shape).astype(f32))
    finish(L["conv_b"], L["bn_b"], wb, sb, np.einsum("nhwc,nhwo->co", xb.astype(f64), dub.astype(f64))[None, None], dub)
    dud = to_bf16(pointwise_conv(dub, wfb[0, 0].T)) * ((yd > 0) & (yd < 6))
    finish(L["dw"], L["bn_d"], wd, sd, np.einsum("ijnhwc,nhwc->ijc", win, dud.astype(f64))[..., None], dud)
    dxd = np.zeros(xd.shape)
    for i in range(3):
        for j in range(3):
            dxd[:, i:i + 2 * dud.shape[1]:2, j:j + 2 * dud.shape[2]:2] += dud * wfd[i, j, :, 0].astype(f64)
    dya = dxd[:, :-1, :-1].astype(f32)  # the padding's gradient: the unpadded part
    dua = to_bf16(dya * ((ya > 0) & (ya < 6)))
    finish(L["conv_a"], L["bn_a"], wa, sa, np.einsum("nhwc,nhwo->co", xa.astype(f64), dua.astype(f64))[None, None], dua)
    return grads


def test_trainable_blocks_match_a_bf16_emulation(bf16):
    rng = np.random.default_rng(5)
    model = trainable_blocks_model(rng)
    plan = model._ensure_graph().describe_plan(3, False, catdog._engine.KEEP_FOR_BACKWARD)
    assert plan.count("\ntrain ") == 3, plan  # every conv runs as a trainable block
    # conv_a's output goes to a plain layer (the pad): float32; the depthwise block's only to
    # conv_b's block: bf16, and its gradient too
    assert "train 1-3 conv=1 post=bn+clip out=f32" in plan, plan
    assert "train 5-7 conv=5 post=bn+clip out=bf16 kept grad=bf16" in plan, plan
    x = rng.uniform(-2, 2, (3, 6, 6, 8)).astype(np.float32)
    y = np.array([0, 1, 1], np.float32)
    got = training_step_gradients(model, x, y)
    want = emulate_trainable_blocks(model, x, y)
    catdog.config.set_precision("fp32")
    fp32 = training_step_gradients(model, x, y)
    assert sorted(got) == sorted(want)
    for k in want:
        scale = float(np.abs(want[k]).max())
        err = float(np.abs(got[k] - want[k].reshape(got[k].shape)).max())
        assert err <= 1e-5 * scale, (k, err / scale)
    # the bf16 operands made a difference where the convolutions' gradients come from
    for k in ("conv_a/kernel", "dw/depthwise_kernel", "conv_b/kernel", "bn_a/beta"):
        assert np.abs(fp32[k] - got[k]).max() > 1e-4 * np.abs(fp32[k]).max(), k


def fine_tuning_model(batch_seed=0):
    """MobileNetV2 (alpha 0.35, 48x48) + GAP + Dense(1), unfrozen from layer 100: trainable
    expand / depthwise / project blocks and the plain layers between them."""
    catdog.random.set_seed(3)
    base = catdog.applications.MobileNetV2(input_shape=(48, 48, 3), alpha=0.35,
                                           include_top=False, weights=None)
    inputs = catdog.Input((48, 48, 3))
    out = layers.Dense(1)(layers.GlobalAveragePooling2D()(base(inputs, training=False)))
    model = catdog.Model(inputs, out)
    base.trainable = True
    for layer in base.layers[:100]:
        layer.trainable = False
    rng = np.random.default_rng(batch_seed)
    x = rng.uniform(-1, 1, (24, 48, 48, 3)).astype(np.float32)
    y = (rng.uniform(size=24) > 0.5).astype(np.float32)
    return model, x, y


def test_bf16_fine_tuning_gradients_close_to_fp32(bf16):
    model, x, y = fine_tuning_model()
    plan = model._ensure_graph().describe_plan(24, False, catdog._engine.KEEP_FOR_BACKWARD)
    assert plan.count("\ntrain ") >= 15, plan  # expand, depthwise and project blocks
    half = training_step_gradients(model, x, y)
    again = training_step_gradients(model, x, y)
    catdog.config.set_precision("fp32")
    full = training_step_gradients(model, x, y)
    assert sorted(half) == sorted(full) and len(full) > 40
    cosine = {}
    for k in full:
        assert np.array_equal(half[k], again[k]), k  # deterministic
        a, b = half[k].ravel().astype(np.float64), full[k].ravel().astype(np.float64)
        cosine[k] = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert min(cosine.values()) > 0.9, sorted(cosine.items(), key=lambda kv: kv[1])[:5]
    assert min(cosine.values()) < 0.9999  # bf16 operands: not the fp32 answer


def test_bf16_fine_tuning_fit_is_deterministic_and_learns(bf16):
    """fit in bf16 (micro-batched trainable part, RMSprop in float32): same bits twice, the
    loss falls, and close to the fp32 run's."""
    def run():
        model, x, y = fine_tuning_model()
        model.compile(optimizer=catdog.optimizers.RMSprop(1e-3),
                      loss=catdog.losses.BinaryCrossentropy(from_logits=True))
        catdog.random.set_seed(7)
        h = model.fit(x, y, batch_size=24, epochs=4, shuffle=False, verbose=0)
        return h.history["loss"], model.layers[-1].get_weights()[0]

    l1, w1 = run()
    l2, w2 = run()
    assert l1 == l2 and np.array_equal(w1, w2)
    assert l1[-1] < l1[0], l1
    catdog.config.set_precision("fp32")
    l32, _ = run()
    np.testing.assert_allclose(l1, l32, rtol=0.05)
