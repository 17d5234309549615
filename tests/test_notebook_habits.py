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


# ---- input of another size ----------------------------------------------------------------
@pytest.mark.parametrize("image_size", [(64, 64), (33, 300), (1, 1)])
def test_fit_evaluate_predict_refuse_a_dataset_of_another_size(tmp_path, image_size):
    ds = idfd(make_folder(tmp_path), image_size=image_size, batch_size=4, verbose=False)
    model = model_cell(make_base())
    compile_(model)
    before = model.get_weights()
    shapes = [rf"\(batch, {SIZE}, {SIZE}, 3\)", rf"\({image_size[0]}, {image_size[1]}, 3\)"]
    for call in (lambda: model.fit(ds, epochs=1, verbose=0),
                 lambda: model.fit(*arrays(), validation_data=ds, verbose=0),
                 lambda: model.evaluate(ds, verbose=0),
                 lambda: model.predict(ds)):
        with pytest.raises(ValueError) as e:
            call()
        for s in shapes:
            assert e.match(s)
    assert same_weights(model.get_weights(), before)


def test_the_engine_refuses_a_loader_of_another_size(tmp_path):
    """Below the Python checks: the C epoch itself refuses batches of another image size
    (its steps would read H * W * 3 floats per image from smaller buffers)."""
    ds = idfd(make_folder(tmp_path), image_size=(8, 8), batch_size=4, verbose=False)
    model = model_cell(make_base())
    compile_(model)
    model.train_on_batch(*arrays(4))
    g = model._graph
    for train in (True, False):
        with pytest.raises(ValueError, match=r"images are \(8, 8, 3\) but the model's input is "
                                             r"\(32, 32, 3\)"):
            g.run_epoch(ds.loader(0, training=train), train)


def test_arrays_of_another_size_are_refused_before_training():
    model = model_cell(make_base())
    compile_(model)
    before = model.get_weights()
    x, y = arrays(8, 40)
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.evaluate(x, y, verbose=0),
                 lambda: model.predict(x)):
        with pytest.raises(ValueError, match=r"\(batch, 32, 32, 3\).*\(40, 40, 3\)"):
            call()
    assert same_weights(model.get_weights(), before)


def test_none_spatial_dims_take_any_size():
    from catdog import _checks

    class Stub:
        name, input_shape = "free", (None, None, 3)

    for ok in [(1, 1, 3), (160, 33, 3), (500, 400, 3)]:
        _checks.input_shape(Stub, ok)
    for bad in [(0, 64, 3), (64, 64, 1)]:
        with pytest.raises(ValueError, match=r"\(batch, None, None, 3\).*any size >= 1"):
            _checks.input_shape(Stub, bad)
    inputs = catdog.Input((None, None, 3))  # the model plans a graph per size it meets
    model = catdog.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling2D()(inputs)))
    assert model.predict(np.zeros((1, 40, 40, 3), np.float32)).shape == (1, 1)


# ---- labels the loss cannot mean ----------------------------------------------------------
def test_binary_crossentropy_refuses_labels_outside_0_1():
    model = model_cell(make_base())
    compile_(model)
    before = model.get_weights()
    x, _ = arrays(8)
    y = np.array([-5, 7, 3, 0, 1, 0, 1, 0])
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.evaluate(x, y, verbose=0),
                 lambda: model.train_on_batch(x, y), lambda: model.test_on_batch(x, y),
                 lambda: model.fit(x[:4], y[4:], validation_data=(x, y), verbose=0)):
        with pytest.raises(ValueError, match=r"labels in \[0, 1\].*got -5, 3, 7 \(3 of 8 labels"):
            call()
    assert same_weights(model.get_weights(), before)
    h = model.fit(x, np.linspace(0, 1, 8), verbose=0)  # soft targets are fine
    assert h.history["loss"][0] > 0


def test_a_three_class_int_folder_into_a_one_unit_head_is_refused(tmp_path):
    ds = idfd(make_folder(tmp_path, ("a", "b", "c"), n=4, size=(32, 32)), image_size=(32, 32),
              label_mode="int", batch_size=4, verbose=False)
    model = model_cell(make_base())
    compile_(model)
    before = model.get_weights()
    for call in (lambda: model.fit(ds, verbose=0), lambda: model.evaluate(ds, verbose=0)):
        with pytest.raises(ValueError, match=r"got 2 \(4 of 12 labels; the dataset has 3 classes "
                                             r"\(a, b, c\) and label_mode='int'\)"):
            call()
    assert same_weights(model.get_weights(), before)
    # the same folder into a 3-unit softmax head trains; a 2-unit one is refused up front
    sce = catdog.losses.SparseCategoricalCrossentropy(from_logits=True)
    three = model_cell(make_base(), units=3)
    three.compile(optimizer="adam", loss=sce)
    assert np.isfinite(three.fit(ds, verbose=0).history["loss"][0])
    two = model_cell(make_base(), units=2)
    two.compile(optimizer="adam", loss=sce)
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\).*got 2 .*3 classes"):
        two.fit(ds, verbose=0)


# ---- files gone after the dataset was made ------------------------------------------------
@pytest.mark.parametrize("run", ["fit", "evaluate"])
def test_uncached_files_gone_after_creation_warn_in_fit_and_evaluate(tmp_path, run):
    root = make_folder(tmp_path, n=8, size=(32, 32))
    ds = idfd(root, image_size=(32, 32), cache=False, on_error="warn", batch_size=4,
              label_mode="binary", verbose=False)
    (root / "cats" / "img03.png").unlink()
    corrupt = root / "dogs" / "img05.png"
    corrupt.write_bytes(corrupt.read_bytes()[:60])
    model = model_cell(make_base())
    compile_(model)
    with pytest.warns(RuntimeWarning) as record:
        if run == "fit":
            model.fit(ds, epochs=1, verbose=0)
        else:
            model.evaluate(ds, verbose=0)
    text = "\n".join(str(w.message) for w in record)
    assert "skipped 2 files" in text and "img03.png" in text and "img05.png" in text
    assert {p for p, _ in ds.skipped_files} == {str(root / "cats" / "img03.png"), str(corrupt)}


# ---- Ctrl-C --------------------------------------------------------------------------------
def test_ctrl_c_in_fit_on_arrays_reraises_with_model_and_history_usable():
    model = model_cell(make_base())
    compile_(model)
    x, y = arrays(32)
    seen = []

    def interrupt(batch, logs):
        seen.append(batch)
        if len(seen) == 6:  # epoch 1, batch 1 (4 batches per epoch)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=5, verbose=0,
                  callbacks=[callbacks.LambdaCallback(on_train_batch_end=interrupt)])
    assert model.history.epoch == [0]
    assert len(model.history.history["loss"]) == 1
    assert np.all(np.isfinite(model.predict(x)))
    assert model.fit(x, y, batch_size=8, verbose=0).epoch == [0]  # and it trains on


def test_ctrl_c_stops_a_script_instead_of_running_the_next_cell(tmp_path):
    """A real SIGINT during fit's C epoch: the script does not go on to the next 'cell'."""
    root = make_folder(tmp_path / "data", n=32, size=(32, 32))
    script = textwrap.dedent(f"""
        import os, signal, threading, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import catdog
        from catdog import callbacks
        from test_notebook_habits import make_base, model_cell, compile_
        ds = catdog.utils.image_dataset_from_directory({str(root)!r}, image_size=(32, 32),
                                                       batch_size=4, verbose=False)
        model = model_cell(make_base())
        compile_(model)
        n = []
        def on_batch(batch, logs):
            n.append(batch)
            if len(n) == 3:
                threading.Timer(0.0, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            model.fit(ds, epochs=100, verbose=0,
                      callbacks=[callbacks.LambdaCallback(on_train_batch_end=on_batch)])
        except KeyboardInterrupt:
            print("interrupted after", len(n), "batches; history", model.history.epoch,
                  "predict", model.predict(ds.take(1)).shape, flush=True)
            raise
        print("next cell ran", flush=True)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)  # not the clone's root: its catdog/ is unbuilt
    assert "next cell ran" not in r.stdout
    assert "KeyboardInterrupt" in r.stderr and r.returncode != 0
    assert "interrupted after" in r.stdout and "predict (4, 1)" in r.stdout, r.stdout + r.stderr
    assert int(r.stdout.split("after ")[1].split()[0]) < 100 * 16


# ---- saves killed half-way -----------------------------------------------------------------
SAVER = """
import sys, time
import catdog
from catdog import h5io, layers
inputs = catdog.Input((8, 8, 3))
model = catdog.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling2D()(inputs)))
def hang(path):  # after the temp file is written, before it is renamed: a kill lands here
    print("written", flush=True)
    time.sleep(600)
h5io._plain_mode = hang
model.save_weights(sys.argv[1])
"""


def start_saver(target):
    p = subprocess.Popen([sys.executable, "-c", SAVER, str(target)], stdout=subprocess.PIPE,
                         text=True, cwd=target.parent)
    assert p.stdout.readline().strip() == "written"
    return p


def test_the_next_save_removes_temporaries_of_killed_writers_only(tmp_path):
    live = start_saver(tmp_path / "b.npz")
    killed = start_saver(tmp_path / "a.h5")  # (a save started after the kill would clean up)
    killed.kill()
    killed.wait()
    try:
        tmps = sorted(p.name for p in tmp_path.glob(".*.tmp"))
        assert len(tmps) == 2 and tmps[0].startswith(".a.h5.") and tmps[1].startswith(".b.npz.")
        (tmp_path / ".notes.tmp").write_text("not catdog's")
        (tmp_path / "a.h5").write_bytes(b"the previous good file")
        inputs = catdog.Input((8, 8, 3))
        model = catdog.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling2D()(inputs)))
        model.save_weights(tmp_path / "c.npz")
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted([".notes.tmp", tmps[1], "a.h5", "c.npz"])  # the live writer's stays
        assert (tmp_path / "a.h5").read_bytes() == b"the previous good file"
    finally:
        live.kill()
        live.wait()


# ---- messages for bad arguments ------------------------------------------------------------
def test_bad_arguments_get_messages_naming_the_argument_and_its_range(tmp_path):
    model = model_cell(make_base())
    compile_(model)
    x, y = arrays(8)
    with pytest.raises(ValueError, match=r"fit\(batch_size=0\): batch_size must be an integer >= 1"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match=r"predict\(batch_size=0\): batch_size must be an integer >= 1"):
        model.predict(x, batch_size=0)
    with pytest.raises(ValueError, match=r"evaluate\(batch_size=-3\)"):
        model.evaluate(x, y, batch_size=-3, verbose=0)
    with pytest.raises(ValueError, match=r"fit\(x=None\): x must be the images"):
        model.fit(None, verbose=0)
    with pytest.raises(ValueError, match=r"predict\(x=None\)"):
        model.predict(None)
    empty = model.predict(np.zeros((0, SIZE, SIZE, 3), np.float32))
    assert empty.shape == (0, 1) and empty.dtype == np.float32
    assert model.predict(x[:3], batch_size=None).shape == (3, 1)
    root = make_folder(tmp_path, n=1, size=(8, 8))
    with pytest.raises(ValueError, match=r"image_size must be \(height, width\), each in "
                                         r"\[1, 16384\] pixels, got \(100000, 100000\)"):
        idfd(root, image_size=(100000, 100000), verbose=False)
    with pytest.raises(ValueError, match=r"each in \[1, 16384\]"):
        idfd(root, image_size=(0, 5), verbose=False)
