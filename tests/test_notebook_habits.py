"""Notebook habits (issue 11): re-running the model cell on a shared base_model, datasets of
another image size, labels the loss cannot mean, files gone after the dataset was made,
Ctrl-C, saves killed half-way, and the messages bad arguments get."""
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import numpy as np
import pytest

import catdog
from catdog import callbacks, layers
from catdog.utils import image_dataset_from_directory as idfd
from test_data_imagefiles import png_bytes

SIZE = 32


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def make_base(size=SIZE, alpha=0.35):
    base = catdog.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha,
                                           include_top=False, weights=None)
    base.trainable = False
    return base


def model_cell(base, size=SIZE, units=1):
    """The lab's model cell: a new head on the shared base."""
    inputs = catdog.Input((size, size, 3))
    x = catdog.applications.mobilenet_v2.preprocess_input(inputs)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return catdog.Model(inputs, layers.Dense(units)(x))


def compile_(model, loss=None):
    model.compile(optimizer=catdog.optimizers.Adam(1e-3),
                  loss=loss or catdog.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])


def arrays(n=16, size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32),
            (np.arange(n) % 2).astype(np.float32))


def make_folder(root, classes=("cats", "dogs"), n=8, size=(40, 40)):
    rng = np.random.default_rng(2)
    for c, name in enumerate(classes):
        d = Path(root) / name
        d.mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 256, size=size + (3,), dtype=np.uint8)
            img[..., 0] = 40 + 80 * c
            (d / f"img{i:02d}.png").write_bytes(png_bytes(img))
    return Path(root)


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


# ---- re-running the model cell ------------------------------------------------------------
def test_a_dropped_model_frees_its_graph_and_the_layers_forget_it():
    base = make_base()
    x, y = arrays()
    refs = []
    for _ in range(3):  # the cell run three times: each binding drops the previous model
        model = model_cell(base)
        compile_(model)
        model.fit(x, y, epochs=1, verbose=0)
        refs.append(weakref.ref(model))
    del model  # no gc.collect(): plain reference counting must free it
    assert [r() is None for r in refs] == [True, True, True]
    model = model_cell(base)
    model.predict(x[:2])
    assert {len(layer._owners) for layer in base.layers[1:]} == {1}  # only the live model


def test_rerunning_build_compile_fit_on_a_shared_base_keeps_memory_flat():
    """20 re-runs of the cell (build + compile + fit one epoch): resident memory after the
    last within 10% of its value after the second."""
    base = make_base(64)
    x, y = arrays(32, 64)
    rss = []
    for _ in range(20):
        model = model_cell(base, 64)
        compile_(model)
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)
        rss.append(rss_mb())
    assert rss[-1] <= 1.10 * rss[1], f"RSS MB per re-run: {[round(v) for v in rss]}"


def test_a_dropped_model_leaves_what_it_trained_in_the_shared_layers():
    """Weights trained by a model that is then dropped, never read through it, are what the
    base's layers hold afterwards (as a twin model read before dropping shows)."""
    x, y = arrays()

    def run(drop):
        catdog.random.set_seed(9)
        base = make_base()
        base.trainable = True
        for layer in base.layers[:100]:
            layer.trainable = False
        before = [w.copy() for w in base.layers[-3].weights]
        model = model_cell(base)
        compile_(model)
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        if drop:
            del model
        return before, [w.copy() for w in base.layers[-3].weights]

    before, dropped = run(True)
    _, kept = run(False)
    assert not same_weights(before, dropped)  # training moved them
    assert same_weights(dropped, kept)

