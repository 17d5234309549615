"""image_dataset_from_directory and ImageDataset on small synthetic folders: Keras's
semantics (classes, label modes, partial batch, split), per-epoch reshuffle, fixed and
disjoint take/skip, and bit-identical batches for any worker count, with or without cache."""
import numpy as np
import pytest

import catdog  # noqa: F401
from catdog import _engine
from catdog.layers.preprocessing import RandomFlip, RandomRotation, RandomTranslation, RandomZoom, Rescaling
from catdog.utils import image_dataset_from_directory as idfd
from test_data_imagefiles import bmp_bytes, png_bytes


def make_folder(root, counts=(("cats", 23), ("dogs", 18)), size=(20, 30)):
    """Class folders of PNG/BMP images whose pixels encode (class, index)."""
    rng = np.random.default_rng(1)
    for c, (name, n) in enumerate(counts):
        d = root / name
        d.mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 256, size=size + (3,), dtype=np.uint8)
            img[0, 0] = (c, i, 77)
            data = bmp_bytes(img) if i % 5 == 4 else png_bytes(img)
            (d / f"img{i:03d}.{'bmp' if i % 5 == 4 else 'png'}").write_bytes(data)
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "data")


def collect(batches):
    xs, ys = zip(*batches)
    return np.concatenate(xs), np.concatenate(ys)


def test_keras_semantics_counts_classes_labels(folder, capsys):
    ds = idfd(folder, batch_size=8, image_size=(12, 16), shuffle=False)
    assert "Found 41 files belonging to 2 classes." in capsys.readouterr().out
    assert ds.class_names == ["cats", "dogs"]
    assert ds.cardinality() == 6 and len(ds) == 6
    batches = list(ds)
    assert [len(b[0]) for b in batches] == [8, 8, 8, 8, 8, 1]  # final partial batch
    x, y = collect(batches)
    assert x.dtype == np.float32 and x.shape == (41, 12, 16, 3)
    assert 0 <= x.min() and x.max() <= 255
    assert y.dtype == np.int32 and y.shape == (41,)
    assert list(y) == [0] * 23 + [1] * 18
    assert [p.split("/")[-1] for p in ds.file_paths[:3]] == ["img000.png", "img001.png", "img002.png"]


@pytest.mark.parametrize("mode,shape,dtype", [("binary", (41, 1), np.float32),
                                              ("categorical", (41, 2), np.float32),
                                              ("int", (41,), np.int32)])
def test_label_modes(folder, mode, shape, dtype):
    ds = idfd(folder, label_mode=mode, batch_size=16, image_size=(8, 8), shuffle=False, verbose=False)
    _, y = collect(ds)
    assert y.shape == shape and y.dtype == dtype
    if mode == "categorical":
        assert np.array_equal(y.sum(1), np.ones(41))
        assert np.array_equal(y[:, 1], np.array([0] * 23 + [1] * 18, np.float32))


def test_labels_none_yields_images_only(folder):
    ds = idfd(folder, labels=None, batch_size=16, image_size=(8, 8), shuffle=False, verbose=False)
    first = next(iter(ds))
    assert isinstance(first, np.ndarray) and first.shape == (16, 8, 8, 3)


def test_explicit_labels_list(folder):
    labels = [i % 3 for i in range(41)]
    ds = idfd(folder, labels=labels, batch_size=41, image_size=(8, 8), shuffle=False, verbose=False)
    _, y = next(iter(ds))
    assert list(y) == labels and ds.class_names == ["0", "1", "2"]


def test_images_are_the_resized_pixels(folder):
    ds = idfd(folder, batch_size=41, image_size=(20, 30), shuffle=False, verbose=False)
    x, _ = next(iter(ds))
    # same size: the resize is the identity, so pixel (0, 0) carries (class, index, 77)
    assert np.array_equal(x[:, 0, 0, 2], np.full(41, 77.0))
    assert np.array_equal(x[:, 0, 0, 1], np.array(list(range(23)) + list(range(18)), np.float32))


def test_reshuffles_each_epoch_reproducibly(folder):
    a = idfd(folder, batch_size=8, image_size=(8, 8), seed=5, verbose=False)
    b = idfd(folder, batch_size=8, image_size=(8, 8), seed=5, verbose=False)
    e0, e1 = a.epoch_indices(0), a.epoch_indices(1)
    assert sorted(e0) == sorted(e1) == list(range(41))
    assert not np.array_equal(e0, e1)
    assert np.array_equal(e0, b.epoch_indices(0)) and np.array_equal(e1, b.epoch_indices(1))
    x0, y0 = collect(a)  # iteration k is epoch k
    x1, y1 = collect(a)
    assert not np.array_equal(x0, x1)
    assert sorted(x0[:, 0, 0, 1] + 100 * y0) == sorted(x1[:, 0, 0, 1] + 100 * y1)


def test_take_skip_fixed_and_disjoint_across_epochs(folder):
    ds = idfd(folder, batch_size=4, image_size=(8, 8), seed=11, verbose=False)
    assert ds.cardinality() == 11
    test, val = ds.take(2), ds.skip(2)
    assert test.cardinality() == 2 and val.cardinality() == 9
    assert test.num_samples == 8 and val.num_samples == 33
    sets = []
    for epoch in range(3):
        t = {tuple(r) for r in collect(test)[0][:, 0, 0, :2]}
        v = {tuple(r) for r in collect(val)[0][:, 0, 0, :2]}
        assert len(t) == 8 and len(v) == 33 and not (t & v)
        sets.append(t)
    assert sets[0] == sets[1] == sets[2]
    assert not set(test.file_paths) & set(val.file_paths)
    assert ds.take(-1).num_samples == 41 and ds.skip(100).num_samples == 0
    assert ds.take(3).skip(1).num_samples == 8


def test_validation_split_disjoint_and_complete(folder, capsys):
    tr = idfd(folder, validation_split=0.25, subset="training", seed=3, image_size=(8, 8))
    va = idfd(folder, validation_split=0.25, subset="validation", seed=3, image_size=(8, 8))
    out = capsys.readouterr().out
    assert "Using 31 files for training." in out and "Using 10 files for validation." in out
    assert not set(tr.file_paths) & set(va.file_paths)
    assert len(set(tr.file_paths) | set(va.file_paths)) == 41
    both = idfd(folder, validation_split=0.25, subset="both", seed=3, image_size=(8, 8), verbose=False)
    assert both[0].file_paths == tr.file_paths and both[1].file_paths == va.file_paths


@pytest.mark.parametrize("kwargs,match", [
    (dict(validation_split=0.2, subset="training"), "seed"),
    (dict(validation_split=0.2), "subset"),
    (dict(label_mode="binary", class_names=["cats"]), "exactly 2"),
    (dict(color_mode="grayscale"), "rgb"),
    (dict(class_names=["cats", "horses"]), "class_names"),
    (dict(image_size=(0, 10)), "image_size"),
])
def test_argument_errors(folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        idfd(folder, verbose=False, **kwargs)


def test_binary_needs_two_classes(tmp_path):
    make_folder(tmp_path, counts=(("a", 2), ("b", 2), ("c", 2)))
    with pytest.raises(ValueError, match="exactly 2"):
        idfd(tmp_path, label_mode="binary", verbose=False)


LAB_AUG = [RandomFlip("horizontal"), RandomRotation(0.2)]
ALL_AUG = [RandomFlip("horizontal_and_vertical"), RandomRotation(0.1, fill_mode="constant"),
           RandomZoom(0.2, 0.1, fill_mode="wrap"), RandomTranslation(0.1, 0.2, fill_mode="nearest",
                                                                    interpolation="nearest"),
           Rescaling(1 / 127.5, -1)]


def test_batches_identical_for_any_workers_and_cache(folder):
    ref = None
    for cache in (True, False, 10 * 16 * 16 * 3):  # full, off, a bound holding 10 images
        ds = idfd(folder, batch_size=8, image_size=(16, 16), seed=9, cache=cache, verbose=False)
        assert ds.engine_dataset.cached_count == {True: 41, False: 0}.get(cache, 10)
        for workers in (0, 1, 2, 3):
            got = [(x.copy(), y.copy(), s.copy())
                   for x, y, s in ds.loader(epoch=2, training=True, layers=ALL_AUG, num_workers=workers)]
            flat = np.concatenate([g[0] for g in got])
            if ref is None:
                ref = flat
            assert np.array_equal(flat, ref), f"cache={cache} workers={workers}"


def test_augmentation_only_in_training_and_keyed_by_epoch(folder):
    ds = idfd(folder, batch_size=41, image_size=(16, 16), seed=4, shuffle=False, verbose=False)
    plain, _ = next(ds.epoch_batches(0))
    inference, _ = next(ds.epoch_batches(0, training=False, layers=LAB_AUG))
    assert np.array_equal(plain, inference)
    a0, _ = next(ds.epoch_batches(0, training=True, layers=LAB_AUG))
    a0b, _ = next(ds.epoch_batches(0, training=True, layers=LAB_AUG))
    a1, _ = next(ds.epoch_batches(1, training=True, layers=LAB_AUG))
    assert np.array_equal(a0, a0b) and not np.array_equal(a0, a1) and not np.array_equal(a0, plain)
    rescaled, _ = next(ds.epoch_batches(0, training=False, layers=[Rescaling(1 / 127.5, -1)]))
    assert np.allclose(rescaled, plain / 127.5 - 1, atol=1e-6)


def test_loader_restart_and_capsules(folder):
    ds = idfd(folder, batch_size=10, image_size=(8, 8), seed=2, verbose=False)
    loader = ds.loader(0, num_workers=2)
    first = [x.copy() for x, _, _ in loader]
    assert loader.num_batches == 5 and len(first) == 5
    loader.restart(ds.epoch_indices(0), 0)
    again = [x.copy() for x, _, _ in loader]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert type(loader.capsule()).__name__ == "PyCapsule"
    assert type(ds.engine_dataset.capsule()).__name__ == "PyCapsule"
    with pytest.raises(ValueError):
        _engine.Loader(ds.engine_dataset, np.array([0, 99], np.int64), 4)


def test_shuffle_is_a_permutation_keyed_by_seed_and_epoch():
    idx = np.arange(1000, dtype=np.int64)
    a = _engine.shuffle(1, 0, idx)
    assert sorted(a) == list(range(1000))
    assert np.array_equal(a, _engine.shuffle(1, 0, idx))
    assert not np.array_equal(a, _engine.shuffle(1, 1, idx))
    assert not np.array_equal(a, _engine.shuffle(2, 0, idx))


def test_augment_batch_for_the_training_loop():
    from catdog.data import augment_batch

    x = np.random.default_rng(0).random((4, 10, 10, 3), dtype=np.float32) * 255
    a = augment_batch(x, LAB_AUG, seed=1, epoch=0, batch_index=3)
    b = augment_batch(x, LAB_AUG, seed=1, epoch=0, batch_index=3)
    c = augment_batch(x, LAB_AUG, seed=1, epoch=1, batch_index=3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_layer_arguments_validated():
    with pytest.raises(ValueError):
        RandomFlip("diagonal")
    with pytest.raises(ValueError):
        RandomRotation(0.2, fill_mode="mirror")
    with pytest.raises(ValueError):
        RandomRotation((0.3, 0.1))
    with pytest.raises(ValueError):
        RandomZoom(-2.0 if False else (-1.5, 0.1))
    with pytest.raises(ValueError):
        RandomTranslation(0.1, 1.5)
    r = RandomRotation(0.2)
    assert (r.lower, r.upper) == (-0.2, 0.2) and r.get_config()["fill_mode"] == "reflect"


def test_abandoned_loaders_stop_their_workers(folder):
    import gc
    import os

    def threads():
        return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 0

    ds = idfd(folder, batch_size=4, image_size=(8, 8), seed=2, verbose=False)
    before = threads()
    for epoch in range(20):
        loader = ds.loader(epoch, training=True, layers=LAB_AUG, num_workers=3)
        next(iter(loader))
        del loader  # workers blocked on a full prefetch ring are woken and joined
        it = iter(ds)
        next(it)
        del it
    gc.collect()
    assert threads() <= before
    x = np.concatenate([b[0] for b in ds.loader(0, num_workers=2)])
    assert len(x) == 41
