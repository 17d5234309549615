"""Plans as data: the steps a forward runs (model/plan.c), printed by Graph.describe_plan, follow
the rules from the kinds' flags, and are what the forward then runs."""
import re

import numpy as np

from catdog import _engine
from test_engine_memory import lab  # the lab's model at 64x64, alpha 0.35


STEP = re.compile(r"^(layer|fused|train|segment) (\d+)-(\d+)(.*)$")


def steps(text):
    """[(kind, first, last, rest)] of a describe_plan listing (its header line skipped)."""
    lines = text.strip().splitlines()
    assert lines[0].startswith("plan batch=")
    out = []
    for line in lines[1:]:
        m = STEP.match(line)
        assert m, f"unreadable plan line {line!r}"
        out.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
    return out


def covers_every_node_once(st, num_layers):
    seen = []
    for kind, a, b, _ in st:
        if kind != "segment":
            seen.extend(range(a, b + 1))
    return seen == list(range(num_layers))


def test_keep_all_runs_layer_by_layer_and_keeps_everything():
    _, model = lab()
    g = model._ensure_graph()
    st = steps(g.describe_plan(4, False, _engine.KEEP_ALL))
    assert covers_every_node_once(st, g.num_layers())
    assert all(kind == "layer" and a == b and " kept" in rest for kind, a, b, rest in st)


def test_predict_plan_fuses_the_frozen_part_and_micro_batches_its_prefix():
    _, model = lab()
    g = model._ensure_graph()
    text = g.describe_plan(32, False, _engine.KEEP_LAST)
    st = steps(text)
    assert covers_every_node_once(st, g.num_layers())
    kinds = [k for k, *_ in st]
    assert kinds[0] == "segment" and "micro=8" in st[0][3]
    assert "train" not in kinds
    posts = {re.search(r"post=([\w+]+)", rest).group(1) for k, _, _, rest in st if k == "fused"}
    # projection, expand/depthwise (ReLU6: clip), residual blocks
    assert posts == {"bn", "bn+clip", "bn+add"}, posts
    # only the logits are kept, and the segment goes on past the fused blocks through the
    # layers that run sample by sample (pooling, dropout) up to the kept logits
    assert [a for k, a, b, rest in st if " kept" in rest] == [g.num_layers() - 1]
    assert st[0][2] == g.num_layers() - 2
    # at 8 samples or fewer there is no segment
    assert "segment" not in g.describe_plan(8, False, _engine.KEEP_LAST)


def test_fine_tuning_plan_has_trainable_blocks_above_layer_100():
    base, model = lab()
    base.trainable = True
    for layer in base.layers[:100]:
        layer.trainable = False
    g = model._ensure_graph()
    text = g.describe_plan(32, True, _engine.KEEP_FOR_BACKWARD)
    assert "micro_train=1" in text.splitlines()[0]
    st = steps(text)
    # the forward runs that plan: layer_info's fused_into names each block's first layer
    rng = np.random.default_rng(0)
    g.forward(rng.uniform(-1, 1, (32, 64, 64, 3)).astype(np.float32), True,
              _engine.KEEP_FOR_BACKWARD)
    info = [g.layer_info(i) for i in range(g.num_layers())]
    blocks = {i: a for k, a, b, _ in st if k in ("fused", "train") for i in range(a, b + 1)}
    assert [f["fused_into"] for f in info] == [blocks.get(i, -1) for i in range(len(info))]
    # gradients start at block_11's depthwise conv (layer 100 is a ReLU): trainable blocks
    # from there on, fused inference blocks only below it
    first_grad = min(i for i, f in enumerate(info) if f["needs_grad"])
    assert info[first_grad]["name"] == base.layers[101].name
    trains = [(a, b) for k, a, b, _ in st if k == "train"]
    assert trains and min(a for a, _ in trains) >= first_grad
    assert all(k != "fused" or b < first_grad for k, _, b, _ in st)
    assert all((" grad" in rest) == (b >= first_grad) for k, a, b, rest in st if k != "segment")


def test_plan_follows_trainable_changes():
    base, model = lab()
    g = model._ensure_graph()
    base.trainable = False
    model._ensure_graph()
    frozen = g.describe_plan(32, True, _engine.KEEP_FOR_BACKWARD)
    assert "train " not in frozen and "micro_train=0" in frozen
    base.trainable = True
    model._ensure_graph()
    assert g.describe_plan(32, True, _engine.KEEP_FOR_BACKWARD) != frozen


def test_engine_lists_its_layer_kinds():
    kinds = _engine.layer_kinds()
    for name in ("InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU",
                 "ZeroPadding2D", "Add", "GlobalAveragePooling2D", "Dropout", "Dense", "Rescaling"):
        assert name in kinds
    assert len(set(kinds)) == len(kinds)


# ---- graphs of other families: the planner fuses by what each kind declares -------------------

import catdog  # noqa: E402
from catdog import layers  # noqa: E402


def resnet_shaped():
    """Keras's ResNet50 block shape (keras/src/applications/resnet.py block1): conv (bias) ->
    BN -> relu, shortcut conv -> BN, Add -> relu, after a stem conv -> BN -> relu -> max pool."""
    catdog.random.set_seed(3)
    inp = catdog.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="stem_conv")(inp)
    x = layers.BatchNormalization(epsilon=1.001e-5, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    shortcut = layers.Conv2D(16, 1, name="b_0_conv")(x)
    shortcut = layers.BatchNormalization(epsilon=1.001e-5, name="b_0_bn")(shortcut)
    y = layers.Conv2D(8, 1, name="b_1_conv")(x)
    y = layers.BatchNormalization(epsilon=1.001e-5, name="b_1_bn")(y)
    y = layers.Activation("relu", name="b_1_relu")(y)
    y = layers.Conv2D(16, 3, padding="same", name="b_2_conv")(y)
    y = layers.BatchNormalization(epsilon=1.001e-5, name="b_2_bn")(y)
    y = layers.Add(name="b_add")([shortcut, y])
    y = layers.Activation("relu", name="b_out")(y)
    out = layers.Dense(1, name="head")(layers.GlobalAveragePooling2D(name="gap")(y))
    return catdog.Model(inp, out)


def efficientnet_shaped(drop_rate=0.2):
    """Keras's EfficientNet block shape (keras/src/applications/efficientnet.py block): expand
    conv -> BN -> swish, depthwise 5x5 -> BN -> swish, squeeze-excite (GAP keepdims, conv
    swish, conv sigmoid, Multiply), project conv -> BN, Dropout(noise_shape), Add."""
    catdog.random.set_seed(4)
    inp = catdog.Input((12, 12, 8))
    x = layers.Conv2D(32, 1, use_bias=False, name="expand_conv")(inp)
    x = layers.BatchNormalization(name="expand_bn")(x)
    x = layers.Activation("swish", name="expand_activation")(x)
    x = layers.DepthwiseConv2D(5, padding="same", use_bias=False, name="dwconv")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Activation("swish", name="activation")(x)
    se = layers.GlobalAveragePooling2D(keepdims=True, name="se_squeeze")(x)
    se = layers.Conv2D(2, 1, activation="swish", name="se_reduce")(se)
    se = layers.Conv2D(32, 1, activation="sigmoid", name="se_expand")(se)
    x = layers.Multiply(name="se_excite")([x, se])
    x = layers.Conv2D(8, 1, use_bias=False, name="project_conv")(x)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name="drop")(x)
    x = layers.Add(name="add")([x, inp])
    out = layers.Dense(1, name="head")(layers.GlobalAveragePooling2D(name="gap")(x))
    return catdog.Model(inp, out)


def posts_of(g, st):
    """{first layer's name: post-op chain} of the fused and trainable blocks."""
    return {g.layer_info(a)["name"]: re.search(r"post=([\w+]*)", rest).group(1)
            for k, a, _, rest in st if k in ("fused", "train")}


def randomize_bn(model, rng):
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c),
                               rng.normal(0, 0.3, c), rng.uniform(0.5, 1.5, c)])


def test_resnet_shaped_graph_fuses_conv_bn_relu_and_add_relu():
    model = resnet_shaped()
    rng = np.random.default_rng(1)
    randomize_bn(model, rng)
    g = model._ensure_graph()
    st = steps(g.describe_plan(20, False, _engine.KEEP_LAST))
    assert covers_every_node_once(st, g.num_layers())
    assert posts_of(g, st) == {"stem_conv": "bn+relu", "b_0_conv": "bn", "b_1_conv": "bn+relu",
                               "b_2_conv": "bn+add+relu"}
    # the max pool (a layer with its own oneDNN state) runs inside the micro-batched prefix
    assert st[0][0] == "segment" and st[0][2] >= model.layers.index(model.get_layer("b_out"))
    # the fused forward is the layer-by-layer one
    x = rng.uniform(-1, 1, (20, 16, 16, 3)).astype(np.float32)
    g.forward(x, False)
    full = g.get_output(g.num_layers() - 1, 20)
    np.testing.assert_allclose(model.predict_on_batch(x), full, rtol=1e-5, atol=1e-5)


def test_resnet_shaped_fine_tuning_trains_conv_bias_bn_blocks():
    """Conv2D with a bias under a BN in inference mode (base(x, training=False)) is a trainable
    block; its gradients match the layer-by-layer backward (BN in inference mode, every output
    kept, no block)."""
    model = resnet_shaped()
    rng = np.random.default_rng(2)
    randomize_bn(model, rng)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False  # Keras: a frozen BN runs in inference mode
    g = model._ensure_graph()
    st = steps(g.describe_plan(4, True, _engine.KEEP_FOR_BACKWARD))
    trains = posts_of(g, [s for s in st if s[0] == "train"])
    assert trains == {"stem_conv": "bn+relu", "b_0_conv": "bn", "b_1_conv": "bn+relu",
                      "b_2_conv": "bn"}, trains
    x = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    assert_blocks_match_layers(model, x)


def assert_blocks_match_layers(model, x):
    """The loss's gradients from the fused training step (trainable blocks) against the same
    loss's backward run layer by layer (a forward keeping every output fuses nothing)."""
    y = (np.arange(len(x)) % 2).astype(np.float32)
    fused = model.gradients(x, y, training=True)
    z = model.predict_on_batch(x).astype(np.float64)  # frozen BNs: the same forward
    dz = ((1 / (1 + np.exp(-z))) - y[:, None]) / len(x)  # binary cross-entropy from logits
    layerwise = model.gradients(x, output_gradient=dz.astype(np.float32), training=True)
    assert fused.keys() == layerwise.keys()
    for k in fused:
        np.testing.assert_allclose(fused[k], layerwise[k], rtol=2e-4,
                                   atol=2e-5 * np.abs(layerwise[k]).max(), err_msg=k)


def test_efficientnet_shaped_graph_fuses_swish_and_sigmoid():
    model = efficientnet_shaped()
    rng = np.random.default_rng(3)
    randomize_bn(model, rng)
    g = model._ensure_graph()
    st = steps(g.describe_plan(12, False, _engine.KEEP_LAST))
    assert covers_every_node_once(st, g.num_layers())
    posts = posts_of(g, st)
    assert posts["expand_conv"] == "bn+swish" and posts["dwconv"] == "bn+swish"
    assert posts["se_reduce"] == "swish" and posts["se_expand"] == "logistic"
    # the inference-mode Dropout is passed over: the residual Add fuses after it
    assert posts["project_conv"] == "bn+add"
    x = rng.uniform(-1, 1, (12, 12, 12, 8)).astype(np.float32)
    g.forward(x, False)
    full = g.get_output(g.num_layers() - 1, 12)
    np.testing.assert_allclose(model.predict_on_batch(x), full, rtol=1e-5, atol=1e-5)
    # fine-tuning with frozen BNs: convolutions with swish are conv -> BN blocks whose swish
    # runs as its own layer (its derivative needs its input); the sigmoid stays in its block
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    g = model._ensure_graph()
    st = steps(g.describe_plan(4, True, _engine.KEEP_FOR_BACKWARD))
    trains = posts_of(g, [s for s in st if s[0] == "train"])
    assert trains == {"expand_conv": "bn", "dwconv": "bn", "se_expand": "logistic",
                      "project_conv": "bn"}, trains  # se_reduce: conv (bias) -> swish, layers
    # the same graph without its dropout (a training forward would draw a mask) to compare
    model = efficientnet_shaped(drop_rate=0.0)
    randomize_bn(model, rng)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    assert_blocks_match_layers(model, x[:4])


def test_arithmetic_hard_sigmoid_and_hard_swish_fuse_into_the_conv():
    """Keras's MobileNetV3 writes its gate's hard_sigmoid as `ReLU(6.0)(x + 3.0) * (1.0 / 6.0)`
    (keras/src/applications/mobilenet_v3.py) and Keras 2's wrote hard_swish as
    `Multiply()([x, hard_sigmoid(x)])`: a fused inference block takes either as oneDNN's
    hardsigmoid / hardswish post-op, equal to the layer-by-layer arithmetic within rounding."""
    catdog.random.set_seed(5)
    inp = catdog.Input((10, 10, 4))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(inp)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.Multiply(name="hs")([x, layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)])
    g = layers.Conv2D(8, 1, name="gate")(layers.GlobalAveragePooling2D(keepdims=True)(x))
    g = layers.ReLU(6.0)(g + 3.0) * (1.0 / 6.0)
    x = layers.Multiply(name="excite")([x, g])
    model = catdog.Model(inp, layers.Dense(1)(layers.GlobalAveragePooling2D()(x)))
    rng = np.random.default_rng(6)
    randomize_bn(model, rng)
    graph = model._ensure_graph()
    posts = posts_of(graph, steps(graph.describe_plan(6, False, _engine.KEEP_LAST)))
    assert posts == {"c1": "bn+hard_swish", "gate": "hard_sigmoid"}, posts
    x = rng.uniform(-4, 4, (6, 10, 10, 4)).astype(np.float32)
    graph.forward(x, False)  # layer by layer: the arithmetic as written
    full = graph.get_output(graph.num_layers() - 1, 6)
    np.testing.assert_allclose(model.predict_on_batch(x), full, rtol=1e-5, atol=1e-6)
