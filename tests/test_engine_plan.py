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
    tails = {re.search(r"tail=(\w+)", rest).group(1) for k, _, _, rest in st if k == "fused"}
    assert tails == {"bn", "relu", "add"}  # projection, expand/depthwise, residual blocks
    # only the logits are kept, and the segment ends where its fused blocks end
    assert [a for k, a, b, rest in st if " kept" in rest] == [g.num_layers() - 1]
    seg_last = st[0][2]
    assert any(k == "fused" and b == seg_last for k, _, b, _ in st)
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
