"""image_dataset_from_directory: Keras's file indexing, split and labelling rules, with the
decoding, resizing, caching and batching done by the C pipeline."""
from __future__ import annotations

import os
import warnings
from typing import Optional

import numpy as np

from catdog.data import ImageDataset

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
DEFAULT_CACHE_BYTES = 4 << 30  # decoded images kept beyond this are decoded every epoch
MAX_IMAGE_SIDE = 16384  # pixels per side; csrc/data/dataset.c refuses more


def _iter_valid_files(directory, follow_links):
    """Keras iter_valid_files: walk sorted by folder, files sorted, allowed extensions."""
    walk = os.walk(directory, followlinks=follow_links)
    for root, _, files in sorted(walk, key=lambda x: x[0]):
        for fname in sorted(files):
            if fname.lower().endswith(ALLOWLIST_FORMATS):
                yield root, fname


def index_directory(directory, labels, class_names=None, shuffle=True, seed=None,
                    follow_links=False, verbose=True):
    """Keras dataset_utils.index_directory: (file_paths, labels, class_names)."""
    if labels == "inferred":
        subdirs = [d for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError("The `class_names` passed did not match the names of the "
                                 f"subdirectories of the target directory. Expected: {subdirs} "
                                 f"(or a subset of it), but received: class_names={class_names}")
            subdirs = list(class_names)
    else:
        subdirs = [""]
        if class_names is not None:
            if labels is None:
                raise ValueError("When `labels=None` (no labels), argument `class_names` cannot be specified.")
            raise ValueError("When argument `labels` is specified, argument `class_names` cannot be "
                             "specified (the `class_names` will be the sorted list of labels).")
    class_names = subdirs
    filenames, label_list = [], []
    for index, subdir in enumerate(subdirs):
        class_dir = os.path.join(directory, subdir)
        for root, fname in _iter_valid_files(class_dir, follow_links):
            filenames.append(os.path.join(subdir, os.path.relpath(os.path.join(root, fname), class_dir)))
            label_list.append(index)
    if labels == "inferred":
        labels = np.asarray(label_list, dtype=np.int32)
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError("Expected the lengths of `labels` to match the number of files in the "
                             f"target directory. len(labels) is {len(labels)} while we found "
                             f"{len(filenames)} files in directory {directory}.")
        class_names = [str(label) for label in sorted(set(labels))]
    if verbose:
        if labels is None:
            print(f"Found {len(filenames)} files.")
        else:
            print(f"Found {len(filenames)} files belonging to {len(class_names)} classes.")
    file_paths = [os.path.join(directory, f) if f else directory for f in filenames]
    if shuffle:  # Keras: shuffle globally once, with numpy's RandomState(seed)
        if seed is None:
            seed = np.random.randint(1e6)
        rng = np.random.RandomState(seed)
        rng.shuffle(file_paths)
        if labels is not None:
            labels = np.asarray(labels)
            rng = np.random.RandomState(seed)
            rng.shuffle(labels)
    return file_paths, labels, class_names


def _split(samples, labels, validation_split, subset, verbose=True):
    """Keras get_training_or_validation_split (without its empty-training quirk at 0)."""
    if not validation_split:
        return samples, labels
    num_val = int(validation_split * len(samples))
    cut = len(samples) - num_val
    if subset == "training":
        if verbose:
            print(f"Using {cut} files for training.")
        return samples[:cut], None if labels is None else labels[:cut]
    if verbose:
        print(f"Using {num_val} files for validation.")
    return samples[cut:], None if labels is None else labels[cut:]


def _cache_bytes(cache) -> int:
    if cache is True:
        return DEFAULT_CACHE_BYTES
    if cache is False or cache is None:
        return 0
    n = int(cache)
    if n < 0:
        raise ValueError(f"cache must be True, False or a byte count >= 0, got {cache!r}")
    return n


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(160, 160),
                                 shuffle=True, seed=None, validation_split=None, subset=None,
                                 interpolation="bilinear", follow_links=False,
                                 crop_to_aspect_ratio=False, verbose=True, on_error="warn",
                                 cache=True, num_workers=None, max_pixels=None):
    """Keras's ``image_dataset_from_directory`` on the C pipeline.

    Classes are the sorted subfolders (or `class_names`, in its order); files are listed in a
    stable order (folders sorted, files sorted) and, with `shuffle`, shuffled once with
    ``np.random.RandomState(seed)`` exactly as Keras, so `validation_split` + `subset`
    ("training" | "validation" | "both") pick the same files as Keras for the same seed.
    Batches reshuffle every epoch (catdog's counter RNG: same seed, same order, any thread
    count). label_mode: "int" (int32 (n,)), "binary" (float32 (n, 1)), "categorical" (float32
    (n, K)) or None (images only). Images are float32 (n, H, W, 3) in [0, 255], bilinear
    (half-pixel, no antialias) or nearest as ``tf.image.resize``; decoded once into a uint8
    cache (`cache`: True = up to 4 GiB, False = decode every epoch, or a byte bound).

    catdog additions: `on_error` ("warn" | "skip" | "raise") for files that cannot be decoded
    (warn: drop them and warn once, listing them; skip: drop silently; raise: OSError/
    ValueError naming the file); `num_workers` loader threads; `max_pixels` decoder limit.
    Defaults as Keras except `image_size` (the lab's 160x160).
    """
    from catdog import _engine

    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"directory {directory!r} does not exist or is not a folder")
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple)):
            raise ValueError("`labels` argument should be a list/tuple of integer labels, of the same "
                             "size as the number of image files in the target directory. If you wish "
                             "to infer the labels from the subdirectory names in the target directory, "
                             "pass `labels=\"inferred\"`. If you wish to get a dataset that only "
                             "contains images (no labels), pass `labels=None`.")
        if class_names:
            raise ValueError("You can only pass `class_names` if `labels=\"inferred\"`. "
                             f"Received: labels={labels}, and class_names={class_names}")
    if label_mode not in {"int", "categorical", "binary", None}:
        raise ValueError('`label_mode` argument must be one of "int", "categorical", "binary", '
                         f"or None. Received: label_mode={label_mode}")
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    if color_mode != "rgb":
        raise ValueError(f"catdog decodes to RGB only: color_mode must be 'rgb', got {color_mode!r}")
    interpolation = str(interpolation).lower()
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest' in catdog, got {interpolation!r}")
    if on_error not in ("warn", "skip", "raise"):
        raise ValueError(f"on_error must be 'warn', 'skip' or 'raise', got {on_error!r}")
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be a pair (height, width), got {image_size!r}") from None
    if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
        raise ValueError(f"image_size must be (height, width), each in [1, {MAX_IMAGE_SIDE}] "
                         f"pixels, got {image_size!r}")
    if batch_size is None or int(batch_size) <= 0:
        raise ValueError(f"catdog datasets are batched: batch_size must be > 0, got {batch_size!r}")
    batch_size = int(batch_size)
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError('`subset` must be either "training", "validation" or "both", '
                         f"received: {subset}")
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide a "
                         "`seed` argument, to make sure that there is no overlap between the "
                         "training and validation subset.")
    if seed is None:
        seed = np.random.randint(1e6)

    paths, label_arr, class_names = index_directory(
        directory, labels, class_names=class_names, shuffle=shuffle, seed=seed,
        follow_links=follow_links, verbose=verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 '
                         f"class_names. Received: class_names={class_names}")
    if label_arr is not None:
        label_arr = np.asarray(label_arr)
        if label_mode is not None and labels not in ("inferred", None):
            # explicit labels: class index = position in the sorted distinct labels
            lookup = {v: i for i, v in enumerate(sorted(set(label_arr.tolist())))}
            if label_mode == "int":  # Keras keeps the given integer values
                label_arr = label_arr.astype(np.int64)
            else:
                label_arr = np.asarray([lookup[v] for v in label_arr.tolist()], np.int64)
    num_classes = len(class_names) if class_names else 0
    if label_mode == "int" and label_arr is not None and len(label_arr):
        num_classes = max(num_classes, int(label_arr.max()) + 1)
        if int(label_arr.min()) < 0:
            raise ValueError("integer labels must be >= 0")

    subsets = ["training", "validation"] if subset == "both" else [subset]
    out = []
    for sub in subsets:
        sub_paths, sub_labels = _split(paths, label_arr, validation_split, sub, verbose)
        if not sub_paths:
            raise ValueError(f"No images found in directory {directory}. "
                             f"Allowed formats: {ALLOWLIST_FORMATS}")
        out.append(_make_dataset(_engine, sub_paths, sub_labels, class_names, label_mode,
                                 num_classes, batch_size, shuffle, seed, (height, width),
                                 interpolation, crop_to_aspect_ratio, on_error, cache,
                                 num_workers, max_pixels))
    return tuple(out) if subset == "both" else out[0]


def _make_dataset(_engine, paths, labels, class_names, label_mode, num_classes, batch_size,
                  shuffle, seed, image_size, interpolation, crop, on_error, cache, num_workers,
                  max_pixels):
    cd_mode = "none" if label_mode is None else label_mode
    ds = _engine.Dataset(paths, None if label_mode is None else np.asarray(labels, np.int32),
                         image_size[0], image_size[1], interpolation, bool(crop), cd_mode,
                         max(num_classes, 1), _cache_bytes(cache), on_error,
                         int(max_pixels or 0))
    ds.load(min(os.cpu_count() or 1, 8))
    ok = ds.ok_mask()
    failures = [(paths[i], msg) for i, msg in ds.failures()]
    if failures and on_error == "warn":
        shown = "\n".join(f"  {m}" for _, m in failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        warnings.warn(f"catdog: skipped {len(failures)} of {len(paths)} files that could not be "
                      f"decoded:\n{shown}{more}", RuntimeWarning, stacklevel=3)
    samples = np.flatnonzero(ok).astype(np.int64)
    if len(samples) == 0:
        raise ValueError(f"No decodable images among the {len(paths)} files found "
                         f"(first error: {failures[0][1] if failures else 'none'})")
    return ImageDataset(ds, samples, paths, None if label_mode is None else labels, class_names,
                        label_mode, batch_size, shuffle, seed, image_size, num_workers,
                        skipped=failures, on_error=on_error)
