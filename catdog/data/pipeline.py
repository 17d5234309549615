"""tf.data's transformations on catdog datasets: ``map``, ``cache``, ``shuffle``, ``batch``,
``unbatch``, ``take``, ``skip``, ``prefetch``.

Two kinds of dataset meet here:

- :class:`catdog.data.ImageDataset` (image_dataset_from_directory): its batches come from the
  C loader, and fit / evaluate run a whole epoch of it in C. ``shuffle``, ``unbatch`` followed
  by ``batch``, ``cache`` and ``prefetch`` keep it on that path: they only change the order of
  its samples or its batch size (:class:`OrderOp`, applied in ``ImageDataset.epoch_indices``).
- Python-side datasets (this module's :class:`PythonDataset` subclasses), which are made by
  ``map`` and by what cannot be said as a sample order. They take their input batch by batch
  from the dataset below them (for an ImageDataset: its C loader, which still decodes and
  batches ahead on worker threads) and run in Python on the calling thread. fit / evaluate /
  predict take them through the same loop as a Python iterable of batches: one engine call a
  batch instead of one a whole epoch, augmentation on the calling threads instead of the
  loader's, and no feature cache for validation.

Order: every dataset yields epoch ``e`` (fit's epoch number, or the count of earlier
``iter()`` calls) in one order fixed by its seeds and ``e``. A ``map`` function is called
once per batch, in that order, on the calling thread (``num_parallel_calls`` and
``deterministic`` are accepted and change nothing), so with a deterministic function the
same seed gives the same bits.

tf.data semantics followed (tensorflow/python/data/ops/dataset_ops.py):

- ``shuffle(buffer_size, seed=None, reshuffle_each_iteration=True)``: tf.data's buffer
  algorithm (fill a buffer of ``buffer_size`` elements; each output is a uniformly drawn
  buffer slot, refilled from the input), drawn from catdog's generator keyed by (seed, epoch):
  the same distribution as TensorFlow, not the same numbers. On a batched dataset the
  elements are whole batches (the tutorial's ``train_ds.shuffle(1000)`` permutes its ~92
  batches). catdog keeps a partial last batch last (the C loader batches consecutive runs of
  the sample order); TensorFlow can move it anywhere. Without a seed the shuffle's seed
  comes from the dataset's own (image_dataset_from_directory's ``seed``).
- ``cache()``: an ImageDataset already decodes every image once into its uint8 cache, and
  ``cache()`` returns it unchanged; unlike tf.data it does not freeze the order of the first
  epoch (TensorFlow's ``train_ds.cache()`` after image_dataset_from_directory replays epoch
  1's shuffled batches every epoch; catdog keeps reshuffling them). On a Python-side dataset
  ``cache()`` keeps the first complete epoch's elements in memory and replays them, as
  tf.data does (a ``map`` then runs once).
- ``take(n)`` / ``skip(n)``: on an ImageDataset and on ``map`` of one they select a fixed set
  of samples (catdog's fix of tensorflow/tensorflow#59279, see catdog.data); on other
  Python-side datasets they count the elements of each epoch's stream, as tf.data.
- ``unbatch()`` yields single elements (an image (H, W, 3), or (image, label));
  ``batch(n, drop_remainder=False)`` stacks them again. ``ImageDataset.batch`` (batches of
  batches) is refused: catdog's models take (batch, H, W, 3).
- ``cardinality()`` counts elements (batches); ``UNKNOWN_CARDINALITY`` (-2) where it is not
  known without running the pipeline, as tf.data.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import numpy as np

UNKNOWN_CARDINALITY = -2  # tf.data.UNKNOWN_CARDINALITY
_MASK64 = (1 << 64) - 1
_SHUFFLE_SALT = 0x5348554646  # "SHUFF": keeps shuffle() draws apart from the sample order's


def shuffle_seed(seed: Optional[int], dataset_seed: int, count: int) -> int:
    """The seed a ``shuffle()`` draws from: `seed` when given, else one derived from the
    dataset's seed and how many shuffles were stacked before (deterministic either way)."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"shuffle(seed=...) must be an integer or None, got {seed!r}")
        return int(seed) & _MASK64
    return (int(dataset_seed) * 1000003 + _SHUFFLE_SALT + count) & _MASK64


def _check_buffer(buffer_size) -> int:
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)):
        raise TypeError(f"shuffle(buffer_size) must be an integer, got {buffer_size!r}")
    if buffer_size == -1:  # tf.data.AUTOTUNE
        raise ValueError("shuffle(buffer_size=AUTOTUNE) is not supported (tf.data refuses it "
                         "too); pass a number of elements, e.g. 1000")
    if buffer_size < 1:
        raise ValueError(f"shuffle(buffer_size) must be >= 1, got {buffer_size}")
    return int(buffer_size)


def buffer_shuffle_order(n: int, buffer_size: int, seed: int, epoch: int) -> np.ndarray:
    """Positions 0..n-1 in the order tf.data's shuffle buffer of `buffer_size` emits them:
    fill the buffer with the first elements; each step emits a uniformly drawn slot and
    refills it with the next input element (when the input is exhausted, the buffer drains
    the same way). With buffer_size >= n that is a uniform permutation."""
    rng = np.random.default_rng([seed & _MASK64, int(epoch) & _MASK64, _SHUFFLE_SALT])
    if buffer_size >= n:
        return rng.permutation(n).astype(np.int64)
    buf = list(range(buffer_size))
    nxt = buffer_size
    out = np.empty(n, np.int64)
    draws = rng.random(n)
    for k in range(n):
        j = int(draws[k] * len(buf))
        out[k] = buf[j]
        if nxt < n:
            buf[j] = nxt
            nxt += 1
        else:
            buf[j] = buf[-1]
            buf.pop()
    return out


class OrderOp(NamedTuple):
    """A change of an ImageDataset's sample order, applied after its per-epoch shuffle:
    shuffle runs of `block` samples (a batch, or single samples after unbatch) with a buffer
    of `buffer_size` runs (a partial last run stays last), or, when `buffer_size` is 0,
    drop the samples after the last whole multiple of `block` (batch's drop_remainder)."""
    block: int
    buffer_size: int = 0
    seed: int = 0
    reshuffle: bool = True

    def apply(self, order: np.ndarray, epoch: int) -> np.ndarray:
        if self.buffer_size == 0:
            return order[:len(order) // self.block * self.block]
        whole = len(order) // self.block
        if whole < 2:
            return order
        perm = buffer_shuffle_order(whole, self.buffer_size, self.seed,
                                    epoch if self.reshuffle else 0)
        runs = order[:whole * self.block].reshape(whole, self.block)[perm].reshape(-1)
        return np.concatenate([runs, order[whole * self.block:]])

    def length(self, n: int) -> int:
        return n // self.block * self.block if self.buffer_size == 0 else n


def _as_output(value):
    """What a dataset yields: arrays as catdog arrays (``.numpy()`` works, as on tf tensors),
    tuples kept as tuples."""
    from catdog._array import Array, as_array

    if isinstance(value, tuple):
        return tuple(_as_output(v) for v in value)
    if isinstance(value, Array):
        return value
    if isinstance(value, (np.ndarray, np.generic, int, float, bool)):
        return as_array(value)
    return value


class PythonDataset:
    """A dataset whose elements are made in Python from another dataset's. Subclasses give
    ``_epoch(epoch)`` (a generator of elements) and ``cardinality()``."""

    def __init__(self, parent):
        self._parent = parent
        self._iterations = 0

    # -- what fit / evaluate / predict and the tutorial call ------------------------------------
    def epoch_batches(self, epoch: int, training: bool = False, layers=()):
        if layers:
            raise ValueError("augmentation layers run in the model on a Python-side dataset")
        return self._epoch(int(epoch))

    def __iter__(self):
        epoch = self._iterations
        self._iterations += 1
        return self._epoch(epoch)

    def as_numpy_iterator(self):
        from catdog.data import NumpyIterator

        return NumpyIterator(iter(self))

    def cardinality(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        n = self.cardinality()
        if n < 0:
            raise TypeError("The dataset length is unknown (cardinality() is "
                            "UNKNOWN_CARDINALITY): it is known only by running the pipeline")
        return n

    def __getattr__(self, name):
        # class_names, file_paths, label_mode... belong to the dataset
        # image_dataset_from_directory made; tf.data's map() drops them too
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"'{type(self).__name__}' has no attribute {name!r}: read it on the "
                             "dataset image_dataset_from_directory returned, before map() / "
                             "unbatch() (as with tf.data)")

    # -- transformations ----------------------------------------------------------------------
    def map(self, map_func: Callable, num_parallel_calls=None, deterministic=None, name=None):
        return MappedDataset(self, map_func)

    def cache(self, filename: str = "", name=None):
        _check_cache_filename(filename)
        return CachedDataset(self)

    def prefetch(self, buffer_size=-1, name=None):
        return self  # the C loader below already prefetches; Python work runs when asked

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        return ShuffledDataset(self, _check_buffer(buffer_size),
                               shuffle_seed(seed, self._root_seed(), self._depth()),
                               bool(reshuffle_each_iteration))

    def unbatch(self, name=None):
        return UnbatchedDataset(self)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
              deterministic=None, name=None):
        return BatchedDataset(self, _check_batch_size(batch_size), bool(drop_remainder))

    def take(self, count, name=None):
        return TakeDataset(self, int(count))

    def skip(self, count, name=None):
        return SkipDataset(self, int(count))

    def _root_seed(self) -> int:
        p = self._parent
        return p._root_seed() if isinstance(p, PythonDataset) else int(getattr(p, "seed", 0))

    def _depth(self) -> int:
        p = self._parent
        return 1 + (p._depth() if isinstance(p, PythonDataset) else 0)

    def _parent_epoch(self, epoch: int):
        p = self._parent
        if hasattr(p, "epoch_batches"):
            return p.epoch_batches(epoch)
        raise TypeError(f"cannot read epoch {epoch} of {type(p).__name__}")

    def __repr__(self) -> str:
        n = self.cardinality()
        return f"<{type(self).__name__} of {self._parent!r}, {n if n >= 0 else 'unknown'} elements>"


def _check_cache_filename(filename) -> None:
    if filename:
        raise ValueError("catdog caches in memory only: cache() takes no filename (decoded "
                         "images already live in the dataset's uint8 cache)")


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch(batch_size) must be an integer >= 1, got {batch_size!r}")
    return int(batch_size)


class MappedDataset(PythonDataset):
    """``ds.map(fn)``: fn(*element) for a tuple element (tf.data unpacks tuples), fn(element)
    otherwise, once per element in the dataset's order."""

    def __init__(self, parent, map_func: Callable):
        if not callable(map_func):
            raise TypeError(f"map() takes a function, got {type(map_func).__name__}")
        super().__init__(parent)
        self._fn = map_func

    def _epoch(self, epoch):
        fn = self._fn
        for element in self._parent_epoch(epoch):
            yield _as_output(fn(*element) if isinstance(element, tuple) else fn(element))

    def cardinality(self) -> int:
        return int(self._parent.cardinality())

    def take(self, count, name=None):
        # map is per element, so take/skip of the input select the same elements; on an
        # ImageDataset that keeps catdog's fixed, disjoint take/skip sets
        return MappedDataset(self._parent.take(count), self._fn)

    def skip(self, count, name=None):
        return MappedDataset(self._parent.skip(count), self._fn)


class CachedDataset(PythonDataset):
    """``ds.cache()``: the first complete epoch's elements, replayed in the same order."""

    def __init__(self, parent):
        super().__init__(parent)
        self._cached = None

    def _epoch(self, epoch):
        if self._cached is not None:
            yield from self._cached
            return
        kept = []
        for element in self._parent_epoch(epoch):
            kept.append(element)
            yield element
        self._cached = kept  # only a complete epoch is kept (as tf.data)

    def cardinality(self) -> int:
        return len(self._cached) if self._cached is not None else int(self._parent.cardinality())


class ShuffledDataset(PythonDataset):
    """``ds.shuffle(buffer_size)`` over a Python-side dataset: tf.data's buffer, on the
    element stream."""

    def __init__(self, parent, buffer_size, seed, reshuffle):
        super().__init__(parent)
        self._buffer, self._seed, self._reshuffle = buffer_size, seed, reshuffle

    def _epoch(self, epoch):
        rng = np.random.default_rng([self._seed, (epoch if self._reshuffle else 0) & _MASK64,
                                     _SHUFFLE_SALT])
        buf = []
        for element in self._parent_epoch(epoch):
            if len(buf) < self._buffer:
                buf.append(element)
                continue
            j = int(rng.random() * len(buf))
            yield buf[j]
            buf[j] = element
        while buf:
            j = int(rng.random() * len(buf))
            yield buf[j]
            buf[j] = buf[-1]
            buf.pop()

    def cardinality(self) -> int:
        return int(self._parent.cardinality())


class UnbatchedDataset(PythonDataset):
    """``ds.unbatch()``: the elements of each batch, one by one."""

    def _epoch(self, epoch):
        for element in self._parent_epoch(epoch):
            if isinstance(element, tuple):
                for row in zip(*element):
                    yield _as_output(row)  # a label too answers .numpy()
            else:
                yield from element

    def cardinality(self) -> int:
        p = self._parent
        if hasattr(p, "num_samples") and not isinstance(p, PythonDataset):
            return int(p.num_samples)
        return UNKNOWN_CARDINALITY

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
              deterministic=None, name=None):
        batch_size = _check_batch_size(batch_size)
        if hasattr(self._parent, "_rebatch"):  # back onto an ImageDataset's C path
            return self._parent._rebatch(batch_size, bool(drop_remainder))
        return BatchedDataset(self, batch_size, bool(drop_remainder))

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        if hasattr(self._parent, "_with_order_op"):  # shuffle single samples on the C path
            p = self._parent
            op = OrderOp(1, _check_buffer(buffer_size),
                         shuffle_seed(seed, p.seed, len(p._order_ops)),
                         bool(reshuffle_each_iteration))
            return UnbatchedDataset(p._with_order_op(op))
        return PythonDataset.shuffle(self, buffer_size, seed, reshuffle_each_iteration)


class BatchedDataset(PythonDataset):
    """``ds.batch(n)``: elements stacked n at a time (a tuple element stacks field by field)."""

    def __init__(self, parent, batch_size, drop_remainder):
        super().__init__(parent)
        self._n, self._drop = batch_size, drop_remainder

    @staticmethod
    def _stack(rows):
        if isinstance(rows[0], tuple):
            return _as_output(tuple(np.stack([np.asarray(r[i]) for r in rows])
                                    for i in range(len(rows[0]))))
        return _as_output(np.stack([np.asarray(r) for r in rows]))

    def _epoch(self, epoch):
        rows = []
        for element in self._parent_epoch(epoch):
            rows.append(element)
            if len(rows) == self._n:
                yield self._stack(rows)
                rows = []
        if rows and not self._drop:
            yield self._stack(rows)

    def cardinality(self) -> int:
        n = int(self._parent.cardinality())
        if n < 0:
            return n
        return n // self._n if self._drop else math.ceil(n / self._n)


class TakeDataset(PythonDataset):
    """``ds.take(n)`` on a Python-side dataset: the first n elements of each epoch."""

    def __init__(self, parent, count):
        super().__init__(parent)
        self._count = count

    def _epoch(self, epoch):
        if self._count == 0:
            return
        for k, element in enumerate(self._parent_epoch(epoch)):
            yield element
            if k + 1 == self._count:
                return

    def cardinality(self) -> int:
        n = int(self._parent.cardinality())
        if self._count < 0:
            return n
        return min(n, self._count) if n >= 0 else UNKNOWN_CARDINALITY


class SkipDataset(PythonDataset):
    """``ds.skip(n)`` on a Python-side dataset: all but the first n elements of each epoch."""

    def __init__(self, parent, count):
        super().__init__(parent)
        self._count = count

    def _epoch(self, epoch):
        if self._count < 0:
            return
        for k, element in enumerate(self._parent_epoch(epoch)):
            if k >= self._count:
                yield element

    def cardinality(self) -> int:
        n = int(self._parent.cardinality())
        if self._count < 0:
            return 0
        return max(n - self._count, 0) if n >= 0 else UNKNOWN_CARDINALITY
