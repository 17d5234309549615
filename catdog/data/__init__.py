"""catdog.data: batched image datasets backed by the C data pipeline (csrc/data).

An :class:`ImageDataset` is a fixed list of samples of a C dataset (files decoded once into a
uint8 cache), a batch size and a shuffle seed. Every iteration is a new epoch, reshuffled
with the counter RNG keyed by (seed, epoch) — Keras's reshuffle_each_iteration — and batches
are made ahead by C worker threads.

Its tf.data methods (``map``, ``cache``, ``shuffle``, ``batch``/``unbatch``, ``prefetch``) are
described in catdog.data.pipeline: those that only change the sample order or the batch size
keep the C path; ``map`` makes a Python-side dataset.

``take(n)`` / ``skip(n)`` count batches, like tf.data, but select a *fixed* set of samples:
the first n batches (or all but them) of the epoch-0 order. The resulting datasets keep that
set across epochs (only its order changes), so ``take`` and ``skip`` of the same dataset are
disjoint in every epoch. This is catdog's fix of tensorflow/tensorflow#59279, where the lab's
test split, taken from a dataset that reshuffles each epoch, mixes with the validation split.

For the engine (a whole epoch in C, GIL released): ``ds.loader(epoch, training, layers)``
returns a ``catdog._engine.Loader`` whose ``capsule()`` holds the ``cd_loader *`` (see
csrc/catdog.h, "data pipeline"); ``ds.engine_dataset.capsule()`` holds the ``cd_dataset *``
and ``ds.epoch_indices(epoch)`` the sample order, for a caller that makes its own loader.
"""
from __future__ import annotations

import math
import os
from typing import List, Optional, Sequence

import numpy as np

AUTOTUNE = -1


def default_workers() -> int:
    """Loader threads: two (decode/augment ahead of the engine) unless there is one core."""
    return 2 if (os.cpu_count() or 1) > 1 else 1


class ImageDataset:
    """Batches (images float32 (n, H, W, 3) in [0, 255], labels) of a C-backed dataset."""

    def __init__(self, engine_dataset, samples, file_paths, labels, class_names, label_mode,
                 batch_size, shuffle, seed, image_size, num_workers=None, skipped=(),
                 on_error="warn"):
        self.engine_dataset = engine_dataset          # catdog._engine.Dataset (all files)
        self._samples = np.ascontiguousarray(samples, dtype=np.int64)  # C sample indices
        self._all_paths = file_paths                  # path of every C sample
        self._all_labels = labels                     # class index of every C sample, or None
        self.class_names = class_names
        self.label_mode = label_mode
        self.batch_size = batch_size
        self._shuffle_samples = bool(shuffle)         # reshuffle all samples every epoch
        self._order_ops = ()                          # pipeline.OrderOp: shuffle(), drop_remainder
        self.seed = int(seed)
        self.image_size = tuple(image_size)
        self.num_workers = default_workers() if num_workers is None else int(num_workers)
        self.skipped_files = list(skipped)            # (path, reason) dropped at load
        self.on_error = on_error
        self._iterations = 0                          # epochs started by __iter__

    # -- size -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.cardinality()

    def cardinality(self) -> int:
        """Number of batches (the last one may be partial)."""
        return math.ceil(self.num_samples / self.batch_size)

    @property
    def num_samples(self) -> int:
        n = len(self._samples)
        for op in self._order_ops:
            n = op.length(n)
        return n

    @property
    def file_paths(self) -> List[str]:
        """Paths of this dataset's samples (Keras order: shuffled once by `seed` if shuffle)."""
        return [self._all_paths[i] for i in self._samples]

    @property
    def labels(self) -> Optional[np.ndarray]:
        if self._all_labels is None:
            return None
        return np.asarray(self._all_labels, np.int32)[self._samples]

    # -- order ------------------------------------------------------------------------------
    def epoch_indices(self, epoch: int) -> np.ndarray:
        """C sample indices in the order of epoch `epoch` (int64): the samples reshuffled with
        the counter RNG keyed by (seed, epoch) when the dataset shuffles, then the order
        changes shuffle() / batch(drop_remainder=True) added (pipeline.OrderOp)."""
        if not self._shuffle_samples:
            order = self._samples.copy()
        else:
            from catdog import _engine

            order = _engine.shuffle(self.seed & ((1 << 64) - 1), int(epoch), self._samples)
        for op in self._order_ops:
            order = op.apply(order, int(epoch))
        return order

    def _derive(self, samples) -> "ImageDataset":
        d = object.__new__(ImageDataset)
        d.__dict__.update(self.__dict__)
        d.__dict__.pop("_feature_serial", None)  # another dataset for the feature cache
        d._samples = np.ascontiguousarray(samples, dtype=np.int64)
        d._iterations = 0
        return d

    def take(self, count: int) -> "ImageDataset":
        """The first `count` batches of the epoch-0 order, as a fixed set of samples
        (count < 0: all)."""
        count = int(count)
        order = self.epoch_indices(0)
        return self._derive(order if count < 0 else order[:count * self.batch_size])

    def skip(self, count: int) -> "ImageDataset":
        """All but the first `count` batches of the epoch-0 order, as a fixed set of samples
        (count < 0: none)."""
        count = int(count)
        order = self.epoch_indices(0)
        return self._derive(order[:0] if count < 0 else order[count * self.batch_size:])

    # -- tf.data's transformations (catdog.data.pipeline says what each keeps) ------------------
    def prefetch(self, buffer_size=AUTOTUNE, name=None) -> "ImageDataset":
        """The C loader already makes batches ahead on worker threads: the dataset itself."""
        return self

    def cache(self, filename: str = "", name=None) -> "ImageDataset":
        """Images are already decoded once into the uint8 cache: the dataset itself (which,
        unlike tf.data's cache, keeps reshuffling every epoch). A dataset made with
        ``cache=False`` (or beyond its byte bound) keeps decoding those files every epoch."""
        from catdog.data.pipeline import _check_cache_filename

        _check_cache_filename(filename)
        return self

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True,
                name=None) -> "ImageDataset":
        """tf.data's shuffle of this dataset's elements, its batches: each epoch's batches go
        through a shuffle buffer of `buffer_size` batches (a partial last batch stays last).
        Stays on the C path."""
        from catdog.data import pipeline

        op = pipeline.OrderOp(self.batch_size, pipeline._check_buffer(buffer_size),
                              pipeline.shuffle_seed(seed, self.seed, len(self._order_ops)),
                              bool(reshuffle_each_iteration))
        return self._with_order_op(op)

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """tf.data's map over batches: ``map_func(images, labels)`` (or ``map_func(images)``
        without labels) once per batch, in the loader's order, on the calling thread; a
        Python-side dataset (catdog.data.pipeline.MappedDataset)."""
        from catdog.data.pipeline import MappedDataset

        return MappedDataset(self, map_func)

    def unbatch(self, name=None):
        """Single elements (image (H, W, 3), label); ``.batch(n)`` after it is this dataset
        with batch size n, back on the C path."""
        from catdog.data.pipeline import UnbatchedDataset

        return UnbatchedDataset(self)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
              deterministic=None, name=None):
        raise ValueError(f"this dataset is already batched ({self.batch_size} images a batch) "
                         "and catdog models take (batch, H, W, 3), not batches of batches: "
                         "use ds.unbatch().batch(n) to change the batch size, or "
                         "image_dataset_from_directory(..., batch_size=n)")

    def _with_order_op(self, op) -> "ImageDataset":
        d = self._derive(self._samples)
        d._order_ops = self._order_ops + (op,)
        return d

    def _rebatch(self, batch_size: int, drop_remainder: bool) -> "ImageDataset":
        """unbatch().batch(n): the same sample order cut into batches of n."""
        from catdog.data.pipeline import OrderOp

        d = self._derive(self._samples)
        d.batch_size = int(batch_size)
        if drop_remainder:
            d._order_ops = d._order_ops + (OrderOp(int(batch_size)),)
        return d

    # -- batches ----------------------------------------------------------------------------
    def loader(self, epoch: int = 0, training: bool = False, layers: Sequence = (),
               num_workers: Optional[int] = None, seed: Optional[int] = None):
        """A C loader (catdog._engine.Loader) over epoch `epoch`, running the augmentation
        `layers` (catdog.layers.preprocessing objects) when `training`."""
        from catdog import _engine

        ops = [layer._cd_op() for layer in layers]
        return _engine.Loader(self.engine_dataset, self.epoch_indices(epoch), self.batch_size,
                              training=bool(training),
                              seed=(self.seed if seed is None else int(seed)) & ((1 << 64) - 1),
                              epoch=int(epoch),
                              num_workers=self.num_workers if num_workers is None else int(num_workers),
                              ops=ops)

    def _convert(self, images, labels):
        # catdog arrays (ndarrays with .numpy(), catdog/_array.py): the tutorial calls
        # images[i].numpy() on what a dataset yields, as on TensorFlow tensors
        from catdog._array import as_array

        images = as_array(images)
        if self.label_mode is None:
            return images
        if self.label_mode == "int":
            return images, as_array(labels[:, 0].astype(np.int32))
        return images, as_array(labels)  # binary (n, 1) / categorical (n, K): float32

    def epoch_batches(self, epoch: int, training: bool = False, layers: Sequence = ()):
        """Yield the batches of epoch `epoch`: images, or (images, labels) as Keras."""
        known = len(self.engine_dataset.failures())
        for images, labels, _ in self.loader(epoch, training, layers):
            if len(images):  # a batch whose every (uncached) file failed is skipped
                yield self._convert(images, labels)
        self._report_new_failures(known)

    def _report_new_failures(self, known: int) -> None:
        """Uncached files that failed during this epoch (on_error="warn"): warn once."""
        failures = self.engine_dataset.failures()[known:]
        if not failures:
            return
        self.skipped_files += [(self._all_paths[i], m) for i, m in failures]
        if getattr(self, "on_error", "warn") == "warn":
            import warnings

            shown = "\n".join(f"  {m}" for _, m in failures[:20])
            warnings.warn(f"catdog: skipped {len(failures)} files that could not be decoded "
                          f"this epoch:\n{shown}", RuntimeWarning, stacklevel=3)

    def __iter__(self):
        epoch = self._iterations
        self._iterations += 1
        return self.epoch_batches(epoch)

    def as_numpy_iterator(self):
        """The next epoch's batches as NumPy arrays; like tf.data's iterator it also has
        `.next()` (the tutorial's `test_dataset.as_numpy_iterator().next()`)."""
        return NumpyIterator(iter(self))

    def __repr__(self) -> str:
        h, w = self.image_size
        lab = "" if self.label_mode is None else f", labels={self.label_mode}"
        return (f"<ImageDataset {len(self._samples)} images in {self.cardinality()} batches of "
                f"{self.batch_size}, {h}x{w}{lab}, shuffle={self._shuffle_samples}>")


class NumpyIterator:
    """Iterator over a dataset's batches as plain NumPy arrays, with tf.data's `next()`."""

    def __init__(self, batches):
        self._batches = batches

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._batches)
        if isinstance(batch, tuple):
            return tuple(np.asarray(b).view(np.ndarray) for b in batch)
        return np.asarray(batch).view(np.ndarray)

    next = __next__


def augment_batch(images, layers, seed=0, epoch=0, batch_index=0, samples=None, training=True):
    """Run augmentation `layers` on a batch in C; draws keyed by (seed, epoch, sample) where
    sample defaults to batch_index * 65536 + row."""
    from catdog.layers.preprocessing import apply_layers

    images = np.asarray(images, np.float32)
    if samples is None:
        samples = int(batch_index) * 65536 + np.arange(len(images), dtype=np.int64)
    return apply_layers(layers, images, training=training, seed=int(seed), epoch=int(epoch),
                        samples=samples)


from catdog.data import experimental  # noqa: E402,F401  (tf.data.experimental's names)

from catdog.data.pipeline import UNKNOWN_CARDINALITY  # noqa: E402

__all__ = ["ImageDataset", "AUTOTUNE", "UNKNOWN_CARDINALITY", "NumpyIterator", "augment_batch",
           "default_workers", "experimental"]
