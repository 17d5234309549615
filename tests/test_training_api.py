"""Keras training semantics of the Python API: fit on arrays, History, callbacks
(EarlyStopping, ModelCheckpoint, LambdaCallback), Ctrl-C, compile() resetting optimizer state,
BN inference rules, the sparse categorical loss."""
import numpy as np
import pytest

import catdog
from catdog import _engine, callbacks, layers


def small_model(seed=3, units=1):
    catdog.random.set_seed(seed)
    base = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           include_top=False, weights=None)
    inputs = catdog.Input((32, 32, 3))
    x = catdog.applications.mobilenet_v2.preprocess_input(inputs)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(units)(x)
    model = catdog.Model(inputs, out)
    base.trainable = False
    return base, model


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.float32)
    x = rng.uniform(0, 255, (n, 32, 32, 3)).astype(np.float32)
    x[y == 1, :, :, 0] = 255.0  # a learnable signal: red channel
    return x, y


def compile_(model, lr=1e-2):
    model.compile(optimizer=catdog.optimizers.Adam(lr),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])


def test_fit_arrays_history_and_evaluate():
    _, model = small_model()
    compile_(model)
    x, y = data()
    h = model.fit(x, y, epochs=3, batch_size=16, validation_data=(x, y), verbose=0)
    assert h.epoch == [0, 1, 2]
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in h.history.values())
    loss, acc = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(h.history["val_loss"][-1], rel=1e-6)
    assert h.history["loss"][-1] < h.history["loss"][0]
    h2 = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert h2.epoch == [3, 4]


def test_compile_gives_fresh_optimizer_state():
    """Re-compiling resets Adam's moments and step: training after compile() equals training
    a copy of the weights with a new optimizer."""
    x, y = data(32)
    _, a = small_model()
    compile_(a)
    a.train_on_batch(x, y)
    start = a.get_weights()
    compile_(a)  # fresh state
    a.train_on_batch(x, y)
    _, b = small_model()
    b.set_weights(start)
    compile_(b)
    b.train_on_batch(x, y)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_early_stopping_and_checkpoint(tmp_path):
    _, model = small_model()
    compile_(model, lr=0.0)  # nothing improves: stops after `patience` epochs
    x, y = data(32)
    stop = callbacks.EarlyStopping(monitor="loss", patience=2)
    path = tmp_path / "ckpt_{epoch}.npz"
    ckpt = callbacks.ModelCheckpoint(str(path), monitor="loss")
    seen = []
    hook = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    h = model.fit(x, y, epochs=10, callbacks=[stop, ckpt, hook], verbose=0)
    assert h.epoch == [0, 1, 2] and seen == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt_1.npz", "ckpt_2.npz", "ckpt_3.npz"]
    copy = small_model()[1]
    copy.load_weights(tmp_path / "ckpt_3.npz")
    for a, b in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keyboard_interrupt_keeps_model_and_history():
    _, model = small_model()
    compile_(model)
    x, y = data(64)

    def interrupt(batch, logs):
        if model._epochs_seen == 1 and batch == 1:
            raise KeyboardInterrupt

    model._epochs_seen = 0

    def count(epoch, logs):
        model._epochs_seen += 1

    cb = callbacks.LambdaCallback(on_train_batch_end=interrupt, on_epoch_end=count)
    with pytest.raises(KeyboardInterrupt):  # raised again, as Keras, once the model is usable
        model.fit(x, y, epochs=5, batch_size=16, callbacks=[cb], verbose=0)
    h = model.history
    assert h.epoch == [0]  # the finished epoch only
    before = model.get_weights()
    assert model.predict_on_batch(x[:2]).shape == (2, 1)  # still usable
    model.fit(x, y, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_non_trainable_bn_runs_in_inference_mode_even_when_training():
    """TF2 rule: layer.trainable=False puts BatchNormalization in inference mode, so a
    training-mode call gives the same output and leaves the moving statistics alone."""
    base = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           include_top=False, weights=None)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    base.trainable = False
    infer = base.layer_outputs(x, ["out_relu"])["out_relu"]
    train = base.layer_outputs(x, ["out_relu"], training=True)["out_relu"]
    np.testing.assert_array_equal(infer, train)
    base.trainable = True
    moved = base.layer_outputs(x, ["out_relu"], training=True)["out_relu"]
    assert not np.array_equal(moved, infer)


def test_sparse_categorical_crossentropy_and_accuracy():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 4)).astype(np.float32)
    y = np.array([0, 3, 1, 2, 3], np.float32)
    loss, d = _engine.loss(_engine.LOSS_SPARSE_CE_LOGITS, z, y)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert loss == pytest.approx(float(np.mean(-np.log(p[np.arange(5), y.astype(int)]))), rel=1e-5)
    onehot = np.eye(4)[y.astype(int)]
    np.testing.assert_allclose(d, (p - onehot) / 5, rtol=1e-4, atol=1e-7)
    _, model = small_model(units=3)
    model.compile(optimizer="adam",
                  loss=catdog.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["sparse_categorical_accuracy"])
    x, _ = data(12)
    labels = np.arange(12) % 3
    loss, acc = model.train_on_batch(x, labels)
    logits = model.predict_on_batch(x)
    assert 0 <= acc <= 1 and np.isfinite(loss)
    assert model.evaluate(x, labels, verbose=0)[1] == pytest.approx(
        float(np.mean(logits.argmax(1) == labels)))


def test_layers_shared_between_models_see_trained_weights():
    """Training the lab model updates the base model it contains (weights are pulled lazily
    from the graph that trained them)."""
    base, model = small_model()
    base.trainable = True
    compile_(model, lr=1e-2)
    x, y = data(8)
    xn = catdog.applications.mobilenet_v2.preprocess_input(x)
    before = base.predict_on_batch(xn)
    kernel_before = base.get_layer("Conv_1").get_weights()[0]
    model.train_on_batch(x, y)
    after = base.predict_on_batch(xn)
    assert not np.array_equal(before, after)
    assert not np.array_equal(kernel_before, base.get_layer("Conv_1").get_weights()[0])
    copy = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           include_top=False, weights=None)
    copy.set_weights(base.get_weights())
    np.testing.assert_array_equal(copy.predict_on_batch(xn), after)


def test_train_on_batch_applies_augmentation(monkeypatch):
    """Keras's train_on_batch runs the model's augmentation layers: so does catdog's."""
    from catdog import training

    catdog.random.set_seed(1)
    inputs = catdog.Input((32, 32, 3))
    x = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])(inputs)
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(2, 3, name="c")(x))
    model = catdog.Model(inputs, layers.Dense(1)(x))
    compile_(model)
    assert [type(l).__name__ for l in model._flatten()[1]] == ["RandomFlip", "RandomRotation"]
    seen = []
    real = training._augment
    monkeypatch.setattr(training, "_augment",
                        lambda m, xb, *a: seen.append(real(m, xb, *a)) or seen[-1])
    xb, yb = data(4)
    model.train_on_batch(xb, yb)
    model.train_on_batch(xb, yb)
    assert len(seen) == 2 and not np.array_equal(seen[0], xb)
    assert not np.array_equal(seen[0], seen[1])  # a new draw per step
    assert model.evaluate(xb, yb, verbose=0)  # inference: no augmentation, no error


def test_ctrl_c_during_a_c_epoch_stops_at_a_batch_boundary(tmp_path):
    """A real SIGINT while the C loop trains an epoch on a dataset: fit stops at a batch
    boundary and raises KeyboardInterrupt again (as Keras); the model keeps the last finished
    batch's weights and stays usable, model.history the finished epochs."""
    import os
    import signal
    import threading

    from PIL import Image

    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(48):
            rgb = np.full((40, 40, 3), 200 if cls == "dogs" else 30, np.uint8)
            Image.fromarray(rgb).save(tmp_path / cls / f"{i}.png")
    ds = catdog.utils.image_dataset_from_directory(tmp_path, batch_size=8, image_size=(32, 32),
                                                   label_mode="binary", seed=1)
    _, model = small_model()
    compile_(model)
    calls = []

    def interrupt(batch, logs):
        calls.append(batch)
        if len(calls) == 3:  # deliver SIGINT to ourselves while the C epoch is running
            threading.Timer(0.0, os.kill, (os.getpid(), signal.SIGINT)).start()

    with pytest.raises(KeyboardInterrupt):
        model.fit(ds, epochs=50, verbose=0,
                      callbacks=[callbacks.LambdaCallback(on_train_batch_end=interrupt)])
    h = model.history
    assert len(calls) < 50 * 12  # stopped long before the end
    assert h.epoch == list(range(len(h.epoch)))
    x = np.zeros((2, 32, 32, 3), np.float32)
    assert np.all(np.isfinite(model.predict_on_batch(x)))


def test_augmentation_of_a_batch_is_independent_of_threads():
    from catdog.layers.preprocessing import apply_layers

    x = np.random.default_rng(0).uniform(0, 255, (6, 40, 40, 3)).astype(np.float32)
    ops = [layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)]
    outs = []
    for threads in (1, 2):
        catdog.set_num_threads(threads)
        outs.append(apply_layers(ops, x, training=True, seed=5, epoch=1))
    catdog.set_num_threads(2)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], x)


@pytest.mark.parametrize("as_dataset", [False, True])
def test_set_weights_in_a_callback_reaches_the_next_epoch(tmp_path, as_dataset):
    """Keras: a callback's set_weights is what training continues from. catdog used to train
    the next epoch on the graph's old copy and then pull that back over the new weights."""
    _, model = small_model()
    model.compile(optimizer=catdog.optimizers.SGD(learning_rate=1e-12),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    head = model.layers[-1]
    kernel, bias = head.get_weights()
    target = [np.zeros_like(kernel), np.full_like(bias, 5.0)]

    def reset(epoch, logs):
        if epoch == 0:
            head.set_weights(target)

    x, y = data(32)
    cb = [callbacks.LambdaCallback(on_epoch_end=reset)]
    if as_dataset:  # the epoch runs in C: the change must reach the graph before it starts
        from PIL import Image

        for i, (img, label) in enumerate(zip(x.astype(np.uint8), y)):
            folder = tmp_path / ("b" if label else "a")
            folder.mkdir(exist_ok=True)
            Image.fromarray(img).save(folder / f"{i}.png")
        ds = catdog.utils.image_dataset_from_directory(tmp_path, batch_size=16, image_size=(32, 32))
        model.fit(ds, epochs=3, verbose=0, callbacks=cb)
    else:
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=cb)
    got = head.get_weights()
    np.testing.assert_allclose(got[0], target[0], atol=1e-6)
    np.testing.assert_allclose(got[1], target[1], atol=1e-6)


def test_test_hooks_wrap_each_validation_pass_and_evaluate():
    """Keras's on_test_begin / on_test_end: around fit's validation pass at each epoch's end
    (after the epoch's training, before on_epoch_end) and around evaluate(callbacks=...)."""
    _, model = small_model()
    compile_(model)
    x, y = data(32)
    calls = []

    class Recorder(callbacks.Callback):
        def on_test_begin(self, logs=None):
            calls.append(("test_begin",))

        def on_test_end(self, logs=None):
            calls.append(("test_end", round(logs["loss"], 6)))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch_end", round(logs["val_loss"], 6)))

    h = model.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y), verbose=0,
                  callbacks=[Recorder()])
    v = [round(l, 6) for l in h.history["val_loss"]]
    assert calls == [("test_begin",), ("test_end", v[0]), ("epoch_end", v[0]),
                     ("test_begin",), ("test_end", v[1]), ("epoch_end", v[1])]
    calls.clear()
    ends = []
    loss, _ = model.evaluate(x, y, verbose=0, callbacks=[
        callbacks.LambdaCallback(on_test_begin=lambda logs: ends.append("begin"),
                                 on_test_end=lambda logs: ends.append(logs["loss"]))])
    assert ends == ["begin", loss]
    seen = []  # Keras's LambdaCallback hooks take logs positionally, begin/end ones included
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append(("train_begin", logs)),
        on_epoch_begin=lambda epoch, logs: seen.append(("epoch_begin", epoch, logs)),
        on_test_begin=lambda logs: seen.append("no validation data: not called"),
        on_train_end=lambda logs: seen.append(("train_end", logs)))])
    assert seen == [("train_begin", {}), ("epoch_begin", 0, {}), ("train_end", {})]
    with pytest.raises(TypeError, match="on_tset_end"):
        callbacks.LambdaCallback(on_tset_end=print)


def test_set_random_seed_makes_weights_and_unseeded_shuffles_repeat(tmp_path):
    """catdog.utils.set_random_seed is Keras's: same seed, same initial weights, and
    image_dataset_from_directory without a seed (NumPy's global generator) shuffles alike."""
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / cls / f"{i}.png")

    def build():
        catdog.utils.set_random_seed(21)
        ds = catdog.utils.image_dataset_from_directory(tmp_path, image_size=(8, 8), batch_size=4)
        dense = layers.Dense(3)
        dense.build((5,))  # catdog: shapes without the batch dimension
        return ds.file_paths, [w.copy() for w in dense.get_weights()]

    (paths_a, w_a), (paths_b, w_b) = build(), build()
    assert paths_a == paths_b
    assert all(np.array_equal(p, q) for p, q in zip(w_a, w_b))
    catdog.utils.set_random_seed(22)
    assert catdog.utils.image_dataset_from_directory(
        tmp_path, image_size=(8, 8), batch_size=4).file_paths != paths_a
    with pytest.raises(ValueError, match="integer seed"):
        catdog.utils.set_random_seed("1")
