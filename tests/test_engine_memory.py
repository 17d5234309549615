"""Below the first trainable layer the engine runs inference only: no activation is kept and
no gradient flows there; primitives are built once per batch size."""
import numpy as np
import pytest

import catdog
from catdog import layers


def lab(size=64, base_training=False):
    base = catdog.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.35,
                                           include_top=False, weights=None)
    inputs = catdog.Input((size, size, 3))
    x = catdog.applications.mobilenet_v2.preprocess_input(inputs)
    x = base(x, training=base_training)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(1)(x)
    model = catdog.Model(inputs, out)
    model.compile(optimizer=catdog.optimizers.Adam(1e-4),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    return base, model


def flags(model):
    g = model._graph
    info = [g.layer_info(i) for i in range(g.num_layers())]
    return info


def batch(n=4, size=64):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32), np.arange(n) % 2


def test_frozen_base_keeps_nothing_below_the_head():
    base, model = lab()
    base.trainable = False
    model.train_on_batch(*batch())
    info = flags(model)
    kept = [i["name"] for i in info if i["kept"]]
    grad = [i["name"] for i in info if i["needs_grad"]]
    assert grad == [info[-1]["name"]]  # only Dense
    assert kept == [info[-2]["name"], info[-1]["name"]]  # Dense's input (dropout) and logits
    g = model._graph
    with pytest.raises(RuntimeError, match="not kept"):
        g.get_output(g.find_layer("Conv1"), 4)
    with pytest.raises(ValueError, match="not trainable: no gradient"):
        g.get_gradient(g.find_layer("Conv_1"), 0)


def test_fine_tuning_from_100_keeps_only_the_top():
    base, model = lab()
    base.trainable = True
    for layer in base.layers[:100]:
        layer.trainable = False
    model.train_on_batch(*batch())
    info = flags(model)
    names = [i["name"] for i in info]
    first_grad = min(i for i, f in enumerate(info) if f["needs_grad"])
    first_kept = min(i for i, f in enumerate(info) if f["kept"])
    # the first trainable weights are block_11_depthwise's; its input is the first kept output
    assert names[first_grad] == "block_11_depthwise"
    assert names[first_kept] == "block_11_expand_relu"
    assert not any(f["needs_grad"] for f in info[:first_grad])


def test_predict_keeps_only_the_output_and_matches_full_forward():
    base, model = lab()
    x, _ = batch()
    lean = model.predict_on_batch(x)
    assert sum(f["kept"] for f in flags(model)) == 1
    g = model._graph
    g.forward(x, False)  # keeps everything, runs layer by layer
    full = g.get_output(g.num_layers() - 1, 4)
    # the lean pass folds BN into the convolutions: same maths, other rounding
    np.testing.assert_allclose(lean, full, rtol=1e-4, atol=1e-5 * float(np.abs(full).max()))


def test_partial_last_batch_reuses_plans():
    """Alternating batch sizes (an epoch's full batches and its last partial one) gives the
    same results as running each size alone."""
    base, model = lab()
    x, _ = batch(6)
    a32 = model.predict_on_batch(x[:4])
    a16 = model.predict_on_batch(x[4:])
    for _ in range(3):
        np.testing.assert_array_equal(model.predict_on_batch(x[:4]), a32)
        np.testing.assert_array_equal(model.predict_on_batch(x[4:]), a16)


def test_frozen_prefix_in_micro_batches_matches_whole_batches():
    """Batches above 8 run the frozen prefix 8 samples at a time (the widest activations then
    take a quarter of the memory at batch 32): predictions match the layer-by-layer forward of
    the whole batch, including a partial last micro-batch (20 = 8 + 8 + 4)."""
    base, model = lab()
    x, _ = batch(20)
    lean = model.predict_on_batch(x)
    g = model._graph
    g.forward(x, False)
    full = g.get_output(g.num_layers() - 1, 20)
    np.testing.assert_allclose(lean, full, rtol=1e-4, atol=1e-5 * float(np.abs(full).max()))
    # sample i's answer does not depend on which micro-batch it fell in
    np.testing.assert_allclose(model.predict_on_batch(x[3:11]), lean[3:11], rtol=1e-5,
                               atol=1e-6 * float(np.abs(lean).max()))


def expand_depthwise(stride, size=40, channels=96):
    """MobileNetV2's expand -> depthwise pattern on its own: Conv2D 1x1 -> BN -> ReLU6 ->
    [ZeroPadding2D] DepthwiseConv2D 3x3 -> BN -> ReLU6, with BN statistics and shifts that fold
    into non-zero biases."""
    rng = np.random.default_rng(5)
    inputs = catdog.Input((size, size, 16))
    x = layers.Conv2D(channels, 1, use_bias=False, name="expand")(inputs)
    x = layers.BatchNormalization(name="expand_BN")(x)
    x = layers.ReLU(6.0, name="expand_relu")(x)
    if stride == 2:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid",
                               use_bias=False, name="depthwise")(x)
    x = layers.BatchNormalization(name="depthwise_BN")(x)
    out = layers.ReLU(6.0, name="depthwise_relu")(x)
    model = catdog.Model(inputs, out)
    for layer in model.layers:
        if layer.name.endswith("_BN"):
            c = (channels,)
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 1.0, c),
                               rng.normal(0, 1.0, c), rng.uniform(0.5, 1.5, c)])
    return model, rng.normal(0, 1, (12, size, size, 16)).astype(np.float32)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_tail_runs_inside_the_expand_conv_and_matches(stride):
    """Where the expand conv's output is large (>= 512 KiB per sample: MobileNetV2's blocks
    1-3 at 160x160; 40x40x96 here), expand -> BN -> ReLU6 -> [pad] -> depthwise -> BN -> ReLU6
    runs as one convolution with oneDNN's depthwise post-op: the predictions (micro-batches of
    8 + 4, and batch 1) match the layer-by-layer forward."""
    model, x = expand_depthwise(stride)
    lean = model.predict_on_batch(x)
    g = model._graph
    fused = {i["name"]: i["fused_into"] for i in flags(model)}
    assert set(fused.values()) == {-1, g.find_layer("expand")}, fused
    assert fused["depthwise_relu"] == g.find_layer("expand")
    g.forward(x, False)
    full = g.get_output(g.num_layers() - 1, 12)
    assert float(np.std(full)) > 0.5  # far from saturated: a wrong weight or bias shows
    np.testing.assert_allclose(lean, full, rtol=1e-5, atol=1e-5 * float(np.abs(full).max()))
    np.testing.assert_allclose(model.predict_on_batch(x[:1]), lean[:1], rtol=1e-5,
                               atol=1e-5 * float(np.abs(lean).max()))


def test_small_expand_outputs_keep_their_own_convolutions():
    """Below the threshold (20x20x96 = 150 KiB per sample) fusing measured no faster: the
    expand block and the depthwise block stay two fused convolutions."""
    model, x = expand_depthwise(2, size=20)
    model.predict_on_batch(x)
    fused = {i["name"]: i["fused_into"] for i in flags(model)}
    assert fused["depthwise_relu"] != fused["expand_relu"] and fused["depthwise_relu"] >= 0


def fine_tune_sgd_step_vs_gradients(n, dropout_rate, training):
    """One SGD step of the lab's fine-tuning (from layer 100) at batch n against -lr * the
    gradients of the layer-by-layer forward/backward of the whole batch. Returns the largest
    error relative to each weight's largest step (the two differ by float rounding only: the
    step runs BN folded into the convolutions, frozen and trainable, and sums its gradients
    over micro-batches)."""
    catdog.random.set_seed(3)  # the same random weights whatever ran before
    base, model = lab()
    base.trainable = True
    for layer in base.layers[:100]:
        layer.trainable = False
    lr = 1e10  # random weights: deep gradients are ~1e-14; make every step far above rounding
    model.compile(optimizer=catdog.optimizers.SGD(lr),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    x, y = batch(n)
    y = y.astype(np.float32)
    model.layers[-2].rate = dropout_rate
    grads = model.gradients(x, y, training=training)  # same step => same dropout masks
    before = {k: v.copy() for k, v in ((f"{l.name}/{n}", w) for l in base.layers + model.layers
                                       for (n, w, t) in l._weights if t)}
    model.train_on_batch(x, y)
    errors = {}
    for layer in base.layers + [model.layers[-1]]:
        for (name, w, t) in layer._weights:
            key = f"{layer.name}/{name}"
            if key not in grads:
                continue
            now = layer.get_weights()[[n for n, _, _ in layer._weights].index(name)]
            step = before[key] - now
            scale = max(float(np.abs(lr * grads[key]).max()), 1e-12)
            errors[key] = float(np.abs(step - lr * grads[key]).max()) / scale
    assert len(errors) > 50
    return max(errors.values())


def test_micro_batched_training_step_matches_full_gradients():
    """Fine-tuning from layer 100 at batch 20: the prefix's outputs (the kept
    block_11_expand_relu and block_10_project_BN, read by block_11_add) are assembled from
    micro-batches of 8, and the trainable part runs forward and backward on 16 + 4 samples
    with the weight gradients summed; one SGD step moves the weights exactly by -lr * the
    gradients of the layer-by-layer forward/backward of all 20."""
    assert fine_tune_sgd_step_vs_gradients(20, 0.0, training=False) <= 2e-3


def test_micro_batched_training_keeps_each_samples_dropout_mask():
    """With dropout on, each micro-batch must draw its samples' masks (indexed by sample in
    the whole batch), or the gradients would differ from the whole-batch ones by O(1) (masks
    drawn by index within the micro-batch: measured 1.4-4), not by rounding (<= 2.3e-3).
    Batch 40 = 16 + 16 + 8."""
    assert fine_tune_sgd_step_vs_gradients(40, 0.5, training=True) <= 1e-2


def test_micro_batched_training_keeps_only_a_micro_batch_of_activations():
    """Fine-tuning at batch 32 keeps the trainable part's activations for 16 samples, not 32
    (what makes fine-tuning fit in less memory); with BN in training mode (batch statistics
    couple the samples) the whole batch is kept, as before."""
    def kept_samples(base_training):
        base, model = lab(base_training=base_training)
        base.trainable = True
        for layer in base.layers[:100]:
            layer.trainable = False
        model.train_on_batch(*batch(32))
        return {i["name"]: i["kept_floats"] // int(np.prod(i["shape"]))
                for i in flags(model) if i["kept"] and i["needs_grad"] and i["kept_floats"]}

    micro = kept_samples(False)
    assert len(micro) > 10 and set(micro.values()) == {16}, micro
    whole = kept_samples(True)
    assert len(whole) > 20 and set(whole.values()) == {32}, whole
