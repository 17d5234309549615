"""Shared test helpers: where fixtures and ../shared live, Keras h5 reading, lab models."""
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras"


def shared_dir() -> Path:
    env = os.environ.get("CATDOG_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


SHARED_WEIGHTS = shared_dir() / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
SHARED_DATA = shared_dir() / "data" / "cats_and_dogs_filtered"

needs_shared_weights = pytest.mark.skipif(
    not SHARED_WEIGHTS.exists(),
    reason=f"../shared is absent: no ImageNet weights at {SHARED_WEIGHTS}")
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.exists(), reason=f"../shared is absent: no dataset at {SHARED_DATA}")


def read_keras_h5(path):
    """{layer: {weight name: array}} from a Keras legacy weights file (test-side reader)."""
    out = {}
    with h5py.File(path, "r") as f:
        for lname in [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]:
            g = f[lname]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            out[lname] = {n.split("/")[-1].split(":")[0]: np.asarray(g[n]) for n in names}
    return out


def load_into(model, weights):
    for layer in model.layers:
        if layer.name in weights and layer._weights:
            w = weights[layer.name]
            layer.set_weights([w[n] for n, _, _ in layer._weights])


def assert_close_rel(a, b, rel, what):
    """max|a - b| <= rel * max|b| (the issue's tolerance form)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    assert err <= rel * max(scale, 1e-30), f"{what}: max|a-b| = {err:.3e} > {rel} * {scale:.3e}"
    return err / max(scale, 1e-30)


def training_step_gradients(model, x, y):
    """BCE-from-logits gradients by 'layer/weight' from a training step's own forward
    (KEEP_FOR_BACKWARD: the frozen part fused, each trainable Conv -> BN (-> ReLU6) run as one
    convolution with the BN folded in, whose backward works on the folded weights) instead of
    model.gradients' layer-by-layer forward."""
    import catdog

    g = model._ensure_graph(x.shape[1:3])
    g.forward(x, False, catdog._engine.KEEP_FOR_BACKWARD)
    out = g.get_output(g.num_layers() - 1, x.shape[0])
    labels = np.asarray(y, np.float32).reshape(-1)
    _, dy = catdog._engine.loss(catdog._engine.LOSS_BCE_LOGITS, out.reshape(len(x), -1), labels)
    g.backward(dy.reshape(out.shape))
    grads = {}
    for layer, tr in model._trainable_map():
        for w, (name, _, t) in enumerate(layer._weights if tr else []):
            if t:
                grads[f"{layer.name}/{name}"] = g.get_gradient(model._graph_index[id(layer)], w)
    return grads


def write_image_folders(root, per_split, size, red_shift=0):
    """Random RGB PNGs in root/<split>/{cats,dogs}/<i>.png, per_split {split: images per
    class}, size x size, drawn in that order from default_rng(5); class c's red channel
    shifted by red_shift * c (clipped) so the classes differ. Returns root."""
    from PIL import Image

    rng = np.random.default_rng(5)
    for split, per_class in per_split.items():
        for c, cls in enumerate(("cats", "dogs")):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                if red_shift:
                    rgb[..., 0] = np.clip(rgb[..., 0].astype(int) + red_shift * c, 0, 255)
                Image.fromarray(rgb).save(root / split / cls / f"{i}.png")
    return root
