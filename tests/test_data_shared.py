"""The lab's dataset (../shared/data/cats_and_dogs_filtered): counts, classes, batches, the
lab's take/skip split, every image decoded, and catdog's decoder against TF's.

Decoder difference measured (stb_image 2.27 vs TF 2.21's libjpeg-turbo) on a 160x160 crop
of cat.0.jpg / dog.1.jpg: max 5 levels, mean 1.22 / 1.07 levels, 99th percentile 3 levels.
After Keras's full pipeline (decode + bilinear resize to 160x160): max 4.8, mean 1.04 /
1.07 levels. Tolerances below: max 8, mean 1.5 levels (of 255)."""
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

import catdog  # noqa: F401
from catdog import _engine
from catdog.utils import image_dataset_from_directory as idfd


def shared_dir() -> Path:
    env = os.environ.get("CATDOG_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


DATA = shared_dir() / "data" / "cats_and_dogs_filtered"
FIX = Path(__file__).resolve().parent / "fixtures" / "data"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"../shared is absent: no dataset at {DATA}"),
]


@pytest.fixture(scope="module")
def lab_datasets():
    train = idfd(DATA / "train", shuffle=True, batch_size=32, image_size=(160, 160), seed=1)
    val = idfd(DATA / "validation", shuffle=True, batch_size=32, image_size=(160, 160), seed=2)
    return train, val


def test_lab_counts_classes_batches(lab_datasets, capsys):
    train, val = lab_datasets
    assert train.num_samples == 2000 and val.num_samples == 1000
    assert train.class_names == ["cats", "dogs"] == val.class_names
    assert train.cardinality() == 63 and val.cardinality() == 32
    assert not train.skipped_files and not val.skipped_files  # every image decoded
    assert train.engine_dataset.cached_count == 2000 and bool(train.engine_dataset.ok_mask().all())


def test_lab_take_skip(lab_datasets):
    _, val = lab_datasets
    val_batches = val.cardinality()
    test = val.take(val_batches // 5)
    rest = val.skip(val_batches // 5)
    assert test.num_samples == 192 and rest.num_samples == 808
    assert test.cardinality() == 6 and rest.cardinality() == 26
    assert not set(test.file_paths) & set(rest.file_paths)
    seen = [np.concatenate([x[:, :2, :2].reshape(len(x), -1) for x, _ in test]) for _ in range(2)]
    assert {r.tobytes() for r in seen[0]} == {r.tobytes() for r in seen[1]}  # same images each epoch


def test_one_epoch_yields_every_image(lab_datasets):
    train, _ = lab_datasets
    n, labels = 0, []
    for x, y in train:
        assert x.shape[1:] == (160, 160, 3) and x.dtype == np.float32
        n += len(x)
        labels.append(y)
    assert n == 2000 and int(np.concatenate(labels).sum()) == 1000


def test_decoder_against_tf():
    ref = np.load(FIX / "decode.npz")
    for k in (0, 1):
        path = DATA / str(ref[f"photo{k}/relpath"])
        data = path.read_bytes()
        assert hashlib.sha256(data).digest() == ref[f"photo{k}/sha256"].tobytes()
        img = _engine.decode_image(data)
        assert img.shape == tuple(ref[f"photo{k}/shape"])
        diff = np.abs(img[50:210, 60:220].astype(int) - ref[f"photo{k}/crop"].astype(int))
        assert diff.max() <= 8 and diff.mean() <= 1.5, (path, diff.max(), diff.mean())
        resized = _engine.resize(img, 160, 160)
        e2e = np.abs(resized - ref[f"photo{k}/dataset160x64"] / 64.0)
        assert e2e.max() <= 8 and e2e.mean() <= 1.5, (path, e2e.max(), e2e.mean())
