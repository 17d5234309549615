"""tf.data's transformations on catdog datasets (catdog/data/pipeline.py) as the
classification tutorial uses them (tensorflow/docs site/en/tutorials/images/
classification.ipynb): ``train_ds.cache().shuffle(1000).prefetch(buffer_size=AUTOTUNE)``,
``train_ds.map(lambda x, y: (normalization_layer(x), y))``, ``next(iter(normalized_ds))``,
``image_dataset_from_directory(..., validation_split=0.2, subset=..., seed=123)``; and
``unbatch`` / ``batch``. Semantics from tensorflow/python/data/ops/dataset_ops.py (shuffle
buffer, cache replay, map unpacking tuples, UNKNOWN_CARDINALITY) and Keras 3's
keras/src/utils/dataset_utils.py (the split)."""
import json
from pathlib import Path

import numpy as np
import pytest

import catdog
from catdog import layers
from catdog.data import ImageDataset
from catdog.data.pipeline import PythonDataset, buffer_shuffle_order
from catdog.utils import image_dataset_from_directory as idfd
from conftest import SHARED_DATA
from test_data_dataset import make_folder

SIZE = (20, 30)  # the folder's own size: no resize, so pixel (0, 0) keeps each image's id


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "data", size=SIZE)


def ids(images):
    """Each image's (class, index) id, written into its pixel (0, 0) by make_folder."""
    x = np.asarray(images)
    return (x[..., 0, 0, 0] * 100 + x[..., 0, 0, 1]).astype(int)


def batch_ids(ds, epoch=None):
    it = ds.epoch_batches(epoch) if epoch is not None else iter(ds)
    return [list(ids(b[0] if isinstance(b, tuple) else b)) for b in it]


def make(folder, **kw):
    kw.setdefault("image_size", SIZE)
    kw.setdefault("batch_size", 8)
    kw.setdefault("verbose", False)
    return idfd(folder, **kw)


def test_tutorial_cache_shuffle_prefetch_stays_on_the_c_path(folder):
    base = make(folder, shuffle=False, seed=11)
    ds = base.cache().shuffle(1000).prefetch(buffer_size=catdog.data.AUTOTUNE)
    assert isinstance(ds, ImageDataset) and ds.cardinality() == 6 and len(ds) == 6
    plain = batch_ids(base, 0)
    epochs = [batch_ids(ds, e) for e in range(4)]
    for e in epochs:  # tf.data: shuffling a batched dataset permutes whole batches
        assert sorted(map(tuple, e[:-1])) == sorted(map(tuple, plain[:-1]))
        assert e[-1] == plain[-1]  # catdog keeps the partial last batch last
    assert len({tuple(map(tuple, e)) for e in epochs}) > 1  # reshuffled each epoch
    again = make(folder, shuffle=False, seed=11).cache().shuffle(1000).prefetch(catdog.data.AUTOTUNE)
    assert [batch_ids(again, e) for e in range(4)] == epochs  # same seed, same order
    runs = []
    for _ in range(2):  # no seed: drawn from NumPy's generator, which set_random_seed seeds
        catdog.utils.set_random_seed(42)
        runs.append([batch_ids(make(folder).shuffle(1000), e) for e in range(3)])
    assert runs[0] == runs[1]
    fixed = base.shuffle(1000, seed=5, reshuffle_each_iteration=False)
    assert batch_ids(fixed, 0) == batch_ids(fixed, 3)
    assert batch_ids(base.shuffle(1000, seed=5), 1) != batch_ids(base.shuffle(1000, seed=6), 1)
    # iter() counts epochs as before: the tutorial's `for images, labels in train_ds.take(1)`
    first = next(iter(ds.take(1)))
    assert first[0].shape == (8,) + SIZE + (3,) and first[1].dtype == np.int32
    assert first[0][0].numpy().astype("uint8").shape == SIZE + (3,)


def test_shuffle_of_a_shuffled_dataset_keeps_every_image_once(folder):
    ds = make(folder, seed=9).shuffle(3)
    for e in range(3):
        got = sum(batch_ids(ds, e), [])
        assert sorted(got) == sorted(sum(batch_ids(make(folder, seed=9), e), []))


def test_buffer_shuffle_follows_tf_data():
    """tf.data's buffer: element k leaves after at most k + buffer_size - 1 outputs... and
    enters no earlier than output k - buffer_size + 1; buffer 1 keeps the order."""
    assert list(buffer_shuffle_order(10, 1, 3, 0)) == list(range(10))
    for seed in range(20):
        order = buffer_shuffle_order(50, 4, seed, 0)
        assert sorted(order) == list(range(50))
        assert all(v <= k + 3 for k, v in enumerate(order))  # only the buffer is eligible
    full = buffer_shuffle_order(50, 100, 3, 0)
    assert sorted(full) == list(range(50)) and list(full) != list(range(50))
    assert np.array_equal(buffer_shuffle_order(50, 4, 3, 1), buffer_shuffle_order(50, 4, 3, 1))
    assert not np.array_equal(buffer_shuffle_order(50, 4, 3, 1), buffer_shuffle_order(50, 4, 3, 2))


def test_tutorial_map_normalization(folder):
    train_ds = make(folder, seed=123).cache().shuffle(1000).prefetch(catdog.data.AUTOTUNE)
    normalization_layer = layers.Rescaling(1. / 255)
    normalized_ds = train_ds.map(lambda x, y: (normalization_layer(x), y))
    image_batch, labels_batch = next(iter(normalized_ds))
    first_image = image_batch[0]
    assert 0 <= np.min(first_image) and np.max(first_image) <= 1
    raw_images, raw_labels = next(iter(train_ds))  # the dataset's own epoch 0
    assert np.allclose(image_batch, raw_images / 255, rtol=1e-6, atol=0)
    assert np.array_equal(labels_batch, raw_labels)
    assert image_batch.numpy().shape == (8,) + SIZE + (3,)
    assert normalized_ds.cardinality() == train_ds.cardinality()
    # later epochs: the loader's order, mapped batch by batch
    for e in (1, 2):
        assert batch_ids(normalized_ds.map(lambda x, y: (x * 255, y)), e) == batch_ids(train_ds, e)
    with pytest.raises(AttributeError, match="before map"):
        normalized_ds.class_names


def test_map_calls_once_per_batch_in_order_and_unpacks_tuples(folder):
    ds = make(folder, shuffle=True, seed=4)
    seen = []

    def fn(x, y):
        seen.append(list(ids(x)))
        return x[:, :1, :1], y + 10

    mapped = ds.map(fn, num_parallel_calls=catdog.data.AUTOTUNE)
    out = list(mapped.epoch_batches(2))
    assert seen == batch_ids(ds, 2)
    assert out[0][0].shape == (8, 1, 1, 3) and out[0][1].min() >= 10
    images_only = make(folder, labels=None, shuffle=False).map(lambda x: x.sum(axis=(1, 2, 3)))
    assert next(iter(images_only)).shape == (8,)
    with pytest.raises(TypeError, match="takes a function"):
        ds.map(3)


def test_map_take_skip_keep_catdogs_fixed_disjoint_sets(folder):
    ds = make(folder, seed=1)
    mapped = ds.map(lambda x, y: (x, y))
    test, val = mapped.take(2), mapped.skip(2)
    for e in range(3):
        t, v = set(sum(batch_ids(test, e), [])), set(sum(batch_ids(val, e), []))
        assert len(t) == 16 and len(v) == 25 and not t & v
        assert t == set(sum(batch_ids(ds.take(2), e), []))


def _model():
    catdog.utils.set_random_seed(7)
    model = catdog.Sequential([
        catdog.Input(SIZE + (3,)),
        layers.GlobalAveragePooling2D(),
        layers.Dense(2),
    ])
    model.compile(optimizer=catdog.optimizers.Adam(1e-2),
                  loss=catdog.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_mapped_dataset_trains_evaluates_predicts_like_the_c_path(folder):
    """fit / evaluate / predict on ds.map(f) run batch by batch in Python; with f scaling
    by 1/255 they match the C path on a dataset the model rescales itself."""
    ds = make(folder, seed=3)
    mapped = ds.map(lambda x, y: (x / 255.0, y))

    ref = _model()
    ref_layers = [layers.Rescaling(1 / 255.)] + ref.layers
    c_model = catdog.Sequential([catdog.Input(SIZE + (3,))] + ref_layers)
    c_model.compile(optimizer=catdog.optimizers.Adam(1e-2),
                    loss=catdog.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    h_c = c_model.fit(ds, epochs=3, verbose=0, validation_data=ds)

    model = _model()
    h_py = model.fit(mapped, epochs=3, verbose=0, validation_data=mapped)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert np.allclose(h_py.history[key], h_c.history[key], rtol=1e-5, atol=1e-6), key
    assert np.allclose(model.evaluate(mapped, verbose=0), c_model.evaluate(ds, verbose=0),
                       rtol=1e-5)
    p = model.predict(mapped.take(2))
    assert p.shape == (16, 2)

    # same seed, same bits
    again = _model()
    h_again = again.fit(make(folder, seed=3).map(lambda x, y: (x / 255.0, y)), epochs=3, verbose=0)
    assert h_again.history["loss"] == h_py.history["loss"]
    for a, b in zip(again.get_weights(), model.get_weights()):
        assert np.array_equal(a, b)


def test_cache_replays_a_python_dataset(folder):
    ds = make(folder, seed=2)
    calls = []
    cached = ds.map(lambda x, y: (calls.append(1) or x, y)).cache()
    first = batch_ids(cached, 0)
    assert len(calls) == 6
    assert batch_ids(cached, 1) == first and len(calls) == 6  # replayed, not recomputed
    assert batch_ids(ds, 1) != first  # the dataset below reshuffles; the cache does not
    with pytest.raises(ValueError, match="in memory only"):
        ds.cache("train.cache")
    assert ds.cache() is ds


def test_unbatch_and_batch(folder):
    ds = make(folder, seed=6)
    elems = ds.unbatch()
    assert elems.cardinality() == 41 and len(elems) == 41
    images = [x for x, _ in elems.epoch_batches(1)]
    assert images[0].shape == SIZE + (3,)
    image, label = next(iter(elems))
    assert label.numpy().shape == () and label.dtype == np.int32 and image.numpy().ndim == 3
    assert list(ids(np.stack(images))) == sum(batch_ids(ds, 1), [])

    re = ds.unbatch().batch(5)
    assert isinstance(re, ImageDataset) and re.cardinality() == 9
    assert sum(batch_ids(re, 1), []) == sum(batch_ids(ds, 1), [])
    assert [len(b) for b in batch_ids(re, 1)] == [5] * 8 + [1]
    dropped = ds.unbatch().batch(5, drop_remainder=True)
    assert dropped.cardinality() == 8 and [len(b) for b in batch_ids(dropped, 0)] == [5] * 8

    # sample-level shuffle of single elements, back on the C path
    mixed = make(folder, shuffle=False).unbatch().shuffle(10, seed=1).batch(8)
    assert isinstance(mixed, ImageDataset)
    order = sum(batch_ids(mixed, 0), [])
    plain = sum(batch_ids(make(folder, shuffle=False), 0), [])
    assert sorted(order) == sorted(plain) and order != plain
    assert all(plain.index(v) <= k + 9 for k, v in enumerate(order))  # buffer of 10

    # after map: Python-side unbatch / batch
    py = ds.map(lambda x, y: (x, y)).unbatch().batch(7)
    assert isinstance(py, PythonDataset) and py.cardinality() == catdog.data.UNKNOWN_CARDINALITY
    got = list(py.epoch_batches(1))
    assert [len(x) for x, _ in got] == [7] * 5 + [6]
    assert list(ids(np.concatenate([x for x, _ in got]))) == sum(batch_ids(ds, 1), [])
    with pytest.raises(TypeError, match="unknown"):
        len(py)
    with pytest.raises(ValueError, match="already batched"):
        ds.batch(4)


def test_python_dataset_shuffle_take_skip(folder):
    ds = make(folder, seed=8).map(lambda x, y: (x, y))
    sh = ds.shuffle(2, seed=3)
    for e in range(2):
        a, b = batch_ids(sh, e), batch_ids(ds, e)
        assert sorted(map(tuple, a)) == sorted(map(tuple, b))
    assert batch_ids(sh, 0) == batch_ids(ds.shuffle(2, seed=3), 0)
    assert batch_ids(sh.take(2), 0) == batch_ids(sh, 0)[:2]
    assert batch_ids(sh.skip(4), 0) == batch_ids(sh, 0)[4:]
    assert sh.take(2).cardinality() == 2 and sh.skip(4).cardinality() == 2


@pytest.mark.parametrize("bad,match", [(0, ">= 1"), (-1, "AUTOTUNE"), (2.5, "integer")])
def test_shuffle_arguments(folder, bad, match):
    ds = make(folder)
    with pytest.raises((ValueError, TypeError), match=match):
        ds.shuffle(bad)
    with pytest.raises((ValueError, TypeError), match=match):
        ds.map(lambda x, y: (x, y)).shuffle(bad)


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared is absent: no cats_and_dogs_filtered")
def test_validation_split_matches_keras_on_the_tutorials_call():
    """image_dataset_from_directory(..., validation_split=0.2, subset=..., seed=123) picks
    Keras 3.15's files, in Keras's order (fixture: make_image_utils_fixtures.py)."""
    fix = json.loads((Path(__file__).resolve().parent / "fixtures" / "data" / "image_utils"
                      / "split.json").read_text())
    folder = SHARED_DATA / "train"
    for subset in ("training", "validation"):
        ds = idfd(folder, validation_split=0.2, subset=subset, seed=123, image_size=(32, 32),
                  batch_size=32, verbose=False)
        got = [str(Path(p).relative_to(folder)) for p in ds.file_paths]
        assert got == fix[subset], subset
        assert ds.class_names == fix[f"{subset}_class_names"] == ["cats", "dogs"]
    assert len(fix["training"]) == 1600 and not set(fix["training"]) & set(fix["validation"])


def test_fit_on_a_map_that_does_not_give_pairs_or_raises(folder):
    ds = make(folder, seed=2)
    model = _model()
    with pytest.raises(ValueError, match=r"\(images, labels\) batches"):
        model.fit(ds.map(lambda x, y: x), epochs=1, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    calls = []

    def fails_on_third(x, y):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("user bug")
        return x, y

    with pytest.raises(RuntimeError, match="user bug"):
        model.fit(ds.map(fails_on_third), epochs=1, verbose=0)
    after = model.get_weights()  # the two finished batches trained; nothing half-done
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    assert all(np.all(np.isfinite(w)) for w in after)


def test_map_with_eager_augmentation_is_reproducible_for_a_seed(folder):
    """The data-augmentation tutorial's idiom, ds.map(lambda x, y: (augment(x), y)): the
    unseeded layer draws anew each batch, and set_random_seed replays the same draws."""
    augment = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])

    def run(seed):
        catdog.utils.set_random_seed(seed)
        ds = make(folder, seed=5).map(lambda x, y: (augment(x, training=True), y))
        return [x for x, _ in ds.epoch_batches(0)] + [x for x, _ in ds.epoch_batches(1)]

    a, b, c = run(3), run(3), run(4)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    plain = next(iter(make(folder, seed=5)))[0]  # the same images, epoch 0, unaugmented
    assert a[0].shape == plain.shape and not np.array_equal(a[0], plain)
    assert len({x.tobytes() for x in a}) == len(a)
