"""The feature cache (csrc/model/features.c, issue 15 section 1): evaluation epochs replay the
output of the layers below the first trainable one, with the same bits as the full forward,
and every change below the cut (weights, trainable, precision, dataset) makes it run again."""
import numpy as np
import pytest

import catdog
from catdog import _engine, callbacks, layers
from conftest import SHARED_WEIGHTS, needs_shared_weights, write_image_folders

SIZE = 32
pytestmark = needs_shared_weights  # ImageNet weights: features that differ image to image


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_image_folders(tmp_path_factory.mktemp("fc"), {"train": 24, "val": 20}, 40,
                               red_shift=60)


def datasets(folders):
    kw = dict(batch_size=16, image_size=(SIZE, SIZE), label_mode="binary", seed=1)
    train = catdog.utils.image_dataset_from_directory(folders / "train", **kw)
    val = catdog.utils.image_dataset_from_directory(folders / "val", **kw)  # 16, 16, 8
    return train, val


def lab_model(seed=3):
    catdog.random.set_seed(seed)
    base = catdog.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False,
                                           weights=str(SHARED_WEIGHTS))
    base.trainable = False
    inputs = catdog.Input((SIZE, SIZE, 3))
    x = catdog.applications.mobilenet_v2.preprocess_input(inputs)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(1)(x)
    model = catdog.Model(inputs, out)
    compile_(model, catdog.optimizers.Adam(1e-3))
    return base, model


def compile_(model, opt):
    model.compile(optimizer=opt, loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])


def fine_tune(base, model):
    base.trainable = True
    for layer in base.layers[:100]:
        layer.trainable = False
    compile_(model, catdog.optimizers.RMSprop(1e-4))


def info(model):
    return model._graph.feature_cache_info()


@pytest.fixture
def cache_bytes():
    yield catdog.config.set_feature_cache_bytes
    catdog.config.set_feature_cache_bytes(catdog.config.FEATURE_CACHE_BYTES)


def run_both(cache_bytes, fn):
    """fn() with the cache off, then on: (results off, results on, the cached run's model)."""
    cache_bytes(0)
    off, _ = fn()
    cache_bytes(catdog.config.FEATURE_CACHE_BYTES)
    on, model = fn()
    return off, on, model


def same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), (k, a[k], b[k])


def test_transfer_learning_validation_replays_same_bits(folders, cache_bytes):
    def run():
        train, val = datasets(folders)
        base, model = lab_model()
        h = model.fit(train, epochs=3, validation_data=val, verbose=0)
        ev = model.evaluate(val, verbose=0)
        return dict(h.history, evaluate=ev), model

    off, on, model = run_both(cache_bytes, run)
    same(off, on)
    i = info(model)
    # recorded in epoch 1; replayed in epochs 2, 3 and by evaluate
    assert (i["records"], i["hits"], i["valid"]) == (1, 3, True)
    g = model._graph
    head = g.describe_plan(16, False, _engine.KEEP_LAST).splitlines()[0]
    assert f"cache_cut={i['cut']}" in head
    assert i["cut"] == g.num_layers() - 2  # the dropout's output: the pooled 1280-wide features
    assert i["bytes"] == 40 * (1280 * 4 + 4)


def test_fine_tuning_validation_replays_same_bits_inside_the_micro_batched_prefix(
        folders, cache_bytes):
    def run():
        train, val = datasets(folders)
        base, model = lab_model()
        model.fit(train, epochs=1, validation_data=val, verbose=0)
        fine_tune(base, model)  # trainable changes: the cut moves down
        h = model.fit(train, epochs=3, initial_epoch=1, validation_data=val, verbose=0)
        return dict(h.history, evaluate=model.evaluate(val, verbose=0)), model

    off, on, model = run_both(cache_bytes, run)
    same(off, on)
    i = info(model)
    assert (i["records"], i["hits"]) == (2, 2)
    g = model._graph
    text = g.describe_plan(16, False, _engine.KEEP_LAST).splitlines()
    seg = [l for l in text if l.startswith("segment")][0]
    last = int(seg.split()[1].split("-")[1])
    assert f"cache_cut={i['cut']}" in text[0] and 0 < i["cut"] < last
    # the cut is below the first trainable layer (base layer 100 on)
    first_trainable = min(k for k in range(g.num_layers())
                          if g.layer_info(k)["trainable"] and g.layer_info(k)["num_weights"])
    assert i["cut"] < first_trainable


def test_a_prefix_weight_changed_invalidates(folders, cache_bytes):
    """Within a fit (the engine's weight written between epochs) and between evaluations
    (a layer's set_weights)."""
    def run():
        train, val = datasets(folders)
        base, model = lab_model()

        def nudge(epoch, logs=None):
            if epoch == 2:
                g = model._graph
                k = g.find_layer("Conv1")
                g.set_weight(k, 0, g.get_weight(k, 0) * 1.5)

        h = model.fit(train, epochs=4, validation_data=val, verbose=0,
                      callbacks=[callbacks.LambdaCallback(on_epoch_begin=nudge)])
        out = dict(h.history, before=model.evaluate(val, verbose=0))
        conv = base.get_layer("block_1_project")
        conv.set_weights([w * 0.5 for w in conv.get_weights()])
        out["after"] = model.evaluate(val, verbose=0)
        return out, model

    off, on, model = run_both(cache_bytes, run)
    same(off, on)
    assert off["before"] != off["after"]
    i = info(model)
    assert (i["records"], i["hits"]) == (3, 3)  # epochs 1, 3 and "after" recorded


def test_precision_change_invalidates(folders, cache_bytes):
    try:
        catdog.config.set_precision("bf16")
    except ValueError as e:
        pytest.skip(f"bf16 refused on this CPU: {e}")
    catdog.config.set_precision("fp32")

    def run():
        train, val = datasets(folders)
        base, model = lab_model()

        def switch(epoch, logs=None):
            catdog.config.set_precision("bf16" if epoch == 1 else "fp32")

        h = model.fit(train, epochs=3, validation_data=val, verbose=0,
                      callbacks=[callbacks.LambdaCallback(on_epoch_begin=switch)])
        return dict(h.history), model

    try:
        off, on, model = run_both(cache_bytes, run)
    finally:
        catdog.config.set_precision("fp32")
    same(off, on)
    assert (info(model)["records"], info(model)["hits"]) == (3, 0)


def test_another_dataset_or_order_invalidates_and_evaluate_repeats_hit(folders, cache_bytes):
    def run():
        train, val = datasets(folders)
        base, model = lab_model()
        model.fit(train, epochs=1, verbose=0)
        out = {"a": model.evaluate(val, verbose=0), "a2": model.evaluate(val, verbose=0)}
        out["skip"] = model.evaluate(val.skip(1), verbose=0)     # other samples
        out["copy"] = model.evaluate(val.take(-1), verbose=0)    # another object
        val.batch_size = 8                                       # another batch layout
        out["b8"] = model.evaluate(val, verbose=0)
        val.batch_size = 16
        out["a3"] = model.evaluate(val, verbose=0)
        return out, model

    off, on, model = run_both(cache_bytes, run)
    same(off, on)
    assert off["a"] != off["skip"]
    i = info(model)
    assert (i["records"], i["hits"]) == (5, 1)


def test_past_the_bound_evaluation_runs_in_full(folders, cache_bytes):
    def run():
        train, val = datasets(folders)
        base, model = lab_model()
        h = model.fit(train, epochs=2, validation_data=val, verbose=0)
        return dict(h.history), model

    cache_bytes(0)
    off, _ = run()
    cache_bytes(40 * (1280 * 4 + 4) - 1)  # one byte short of the record
    small, model = run()
    same(off, small)
    i = info(model)
    assert (i["records"], i["hits"], i["valid"], i["bytes"]) == (0, 0, False, 0)
    with pytest.raises(ValueError):
        catdog.config.set_feature_cache_bytes(-1)


def test_bf16_fine_tuning_replays_same_bits(folders, cache_bytes):
    """bf16 mode stores the cut's output as bfloat16 when only fused blocks read it: the
    record holds it as stored."""
    try:
        catdog.config.set_precision("bf16")
    except ValueError as e:
        pytest.skip(f"bf16 refused on this CPU: {e}")

    def run():
        train, val = datasets(folders)
        base, model = lab_model()
        fine_tune(base, model)
        h = model.fit(train, epochs=2, validation_data=val, verbose=0)
        return dict(h.history), model

    try:
        off, on, model = run_both(cache_bytes, run)
    finally:
        catdog.config.set_precision("fp32")
    same(off, on)
    i = info(model)
    assert (i["records"], i["hits"]) == (1, 1)
    assert i["bytes"] < 40 * (2 * 2 * 96 * 4 + 4)  # the 2x2x96 block output in bf16


def test_images_decoded_each_epoch_are_not_cached(folders, cache_bytes):
    """A dataset without the uint8 cache reads its files every epoch: they could change."""
    kw = dict(batch_size=16, image_size=(SIZE, SIZE), label_mode="binary", seed=1)
    val = catdog.utils.image_dataset_from_directory(folders / "val", cache=False, **kw)
    cached = catdog.utils.image_dataset_from_directory(folders / "val", **kw)
    base, model = lab_model()
    a = model.evaluate(val, verbose=0)
    assert model.evaluate(val, verbose=0) == a
    assert (info(model)["records"], info(model)["hits"]) == (0, 0)
    assert model.evaluate(cached, verbose=0) == a  # the same images from the uint8 cache
    assert info(model)["records"] == 1
