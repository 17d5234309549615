"""compile / fit / evaluate for catdog models: Keras's training loop, with each batch's
forward, loss, backward and update running in C with the GIL released."""
from __future__ import annotations

import hashlib
import itertools
import math
import time
import warnings
from typing import List, Optional

import numpy as np

from catdog import _checks
from catdog import losses as losses_mod
from catdog import metrics as metrics_mod
from catdog import optimizers as optimizers_mod
from catdog.callbacks import CallbackList, History
from catdog._progress import StepBar


class _Compiled:
    def __init__(self, optimizer, loss, metrics):
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        if isinstance(metrics, (str, metrics_mod.Metric)):
            metrics = [metrics]
        if metrics and self.loss.family == "regression":
            raise ValueError(f"{type(self.loss).__name__}: catdog's metrics are accuracies, "
                             "which a regression does not have; compile without metrics (the "
                             "loss is reported)")
        self.metrics = [metrics_mod.get(m) for m in (metrics or [])]
        if len(self.metrics) > 1:
            raise ValueError("catdog tracks one accuracy metric per model")
        self.metric_name = self.metrics[0].name if self.metrics else None
        self.threshold = 0.0

    def resolve(self, model):
        """The metric's kind and threshold for this loss on this model's head (a sigmoid /
        softmax Dense's logits are what the loss uses, as Keras)."""
        head = _head_activation(model)
        if self.loss.from_logits and head == self.loss.activation:
            warnings.warn(f"{type(self.loss).__name__}(from_logits=True) on the output of a "
                          f"{head} activation: as Keras, catdog uses the logits before the "
                          f"{head} (was from_logits=False intended?)", stacklevel=4)
        if self.metrics:
            self.metrics = [metrics_mod.resolve(self.metrics[0], self.loss, head)]
            self.threshold = self.metrics[0].threshold


def _output_width(model):
    leaves = model._leaf_layers()
    shape = leaves[-1].output_shape if leaves else None
    return int(np.prod(shape)) if shape else None


def _head_activation(model):
    leaves = model._leaf_layers()
    return getattr(leaves[-1], "activation", None) if leaves else None


def compile(model, optimizer="rmsprop", loss=None, metrics=None):
    """Keras compile(): fresh optimizer state every call (as Keras)."""
    if loss is None:
        raise ValueError("compile() needs a loss, e.g. catdog.losses.BinaryCrossentropy(from_logits=True)")
    c = _Compiled(optimizer, loss, metrics)
    model._compiled = c
    model._forget_optimizer_state()  # engine state made fresh at the next run


def _require_compiled(model):
    if model._compiled is None:
        raise RuntimeError(f"model '{model.name}' must be compiled before training or evaluation")
    return model._compiled


def _engine_ready(model, size=None, training=False):
    """The compiled engine graph for images of `size` (H, W) (it picks the graph of a model
    with a free input size); `training`: a step is about to run, so a free-size model's
    optimizer state comes to this graph (Model._take_optimizer_state)."""
    c = _require_compiled(model)
    g = model._ensure_graph(size)
    if not model._engine_compiled:
        c.resolve(model)
        cfg = c.optimizer.engine_config()
        g.compile(c.optimizer.kind, c.optimizer.learning_rate, c.loss.kind, **cfg)
        g.set_accuracy_threshold(c.threshold)
        model._engine_compiled = True
    if training:
        model._take_optimizer_state(g)
    return g


def _data_size(data):
    """The (H, W) of the images `data` yields when it says (an image dataset, an array),
    else None (a model with a free input size then plans from each batch)."""
    size = getattr(data, "image_size", None)
    if size is not None:
        return tuple(size)
    if isinstance(data, np.ndarray) and data.ndim == 4:
        return data.shape[1:3]
    return None


def _labels(y, model=None, n=None) -> np.ndarray:
    """Labels as the engine takes them: (n,) for binary / integer labels, (n, k) one-hot for
    CategoricalCrossentropy."""
    y = np.asarray(y)
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
        raise ValueError(f"labels must be numeric, got dtype {y.dtype}")
    y = np.ascontiguousarray(y, dtype=np.float32)
    c = getattr(model, "_compiled", None)
    if c is not None and c.loss.family == "regression":
        k = _output_width(model)
        if k is not None and y.size != len(y) * k:
            raise ValueError(f"{type(c.loss).__name__} takes {k} target value(s) per sample (the "
                             f"model's outputs), got labels of shape {y.shape}")
        y = y.reshape(len(y), -1) if y.ndim else y
    elif c is not None and c.loss.family == "categorical":
        k = _output_width(model)
        if y.ndim != 2 or (k is not None and y.shape[1] != k):
            raise ValueError(f"{type(c.loss).__name__} takes one-hot labels of shape (batch, {k})"
                             f", got {y.shape} (integer labels: SparseCategoricalCrossentropy)")
    else:
        if y.ndim > 1 and y.shape[-1] != 1:
            raise ValueError(f"labels of shape {y.shape}: {type(c.loss).__name__ if c else 'the loss'}"
                             " takes one label per image (one-hot labels: "
                             "CategoricalCrossentropy)")
        y = y.reshape(-1)
    if n is not None and len(y) != n:
        raise ValueError(f"got {n} images and {len(y)} labels")
    return y


def train_on_batch(model, x, y):
    """One step on a batch, augmentation layers included (keyed by the step count)."""
    from catdog import random as _random

    x = model._check_x(x)
    g = _engine_ready(model, x.shape[1:3], training=True)
    y = _labels(y, model, len(x))
    _checks.labels(model, y, "train_on_batch")
    x = _augment(model, x, _random.get_seed(), 0, g.step_count())
    loss, correct = g.train_step(x, y)
    model._mark_trained()  # layers pull the new weights when read
    return [float(loss), float(correct) / len(x)] if model._compiled.metrics else float(loss)


def test_on_batch(model, x, y):
    x = model._check_x(x)
    g = _engine_ready(model, x.shape[1:3])
    y = _labels(y, model, len(x))
    _checks.labels(model, y, "test_on_batch")
    loss, correct = g.eval_step(x, y)
    return [float(loss), float(correct) / len(x)] if model._compiled.metrics else float(loss)


def _batches(data, y=None, batch_size=32, shuffle=False, seed=0, epoch=0):
    """(images, labels) batches from a dataset object or NumPy arrays."""
    if y is not None or isinstance(data, np.ndarray):
        if y is None:
            raise ValueError("fit/evaluate on arrays needs labels: fit(x, y, ...)")
        x = np.asarray(data)
        y = np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"got {len(x)} images and {len(y)} labels")
        order = np.arange(len(x))
        if shuffle:
            order = np.random.default_rng([seed, epoch]).permutation(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]
        return
    if hasattr(data, "epoch_batches"):
        if _is_pipeline(data):
            yield from data.epoch_batches(epoch)
            return
        data = data.epoch_batches(epoch)  # a Python-side dataset (map ...): epoch keys its order
    for batch in data:
        if not (isinstance(batch, tuple) and len(batch) == 2):
            raise ValueError("datasets must yield (images, labels) batches")
        yield batch


def _num_batches(data, y=None, batch_size=32) -> Optional[int]:
    if y is not None or isinstance(data, np.ndarray):
        return math.ceil(len(data) / batch_size)
    if hasattr(data, "cardinality"):
        n = int(data.cardinality())
        return n if n >= 0 else None  # tf.data's UNKNOWN_CARDINALITY (-2): no total on the bar
    try:
        return len(data)
    except TypeError:
        return None


def _augment(model, images, seed, epoch, batch_index):
    if not getattr(model, "_augment", None):
        return images
    from catdog.data import augment_batch  # the C data pipeline

    return augment_batch(images, model._augment, seed=seed, epoch=epoch, batch_index=batch_index)


def _is_pipeline(data) -> bool:
    return hasattr(data, "loader") and hasattr(data, "epoch_indices")


def _check_pipeline_labels(model, data):
    mode = getattr(data, "label_mode", "binary")
    loss = model._compiled.loss
    if loss.family == "categorical":
        k = _output_width(model)
        n = len(getattr(data, "class_names", ()) or ())
        if mode != "categorical":
            raise ValueError(f"label_mode={mode!r}: {type(loss).__name__} takes one-hot labels "
                             "(label_mode='categorical'; integer labels go with "
                             "SparseCategoricalCrossentropy)")
        if k is not None and n and n != k:
            raise ValueError(f"the dataset has {n} classes but the model outputs {k} values")
    elif mode not in ("binary", "int"):
        raise ValueError(f"label_mode={mode!r}: {type(loss).__name__} takes one label per image "
                         "(label_mode 'binary' or 'int'; one-hot labels go with "
                         "CategoricalCrossentropy)")


_serials = itertools.count(1)


def _feature_key(data, epoch) -> int:
    """The feature cache's token for an evaluation epoch of `data` (model/features.c): this
    dataset object, its engine dataset, its batch size and its sample order. 0 (no caching)
    unless every image comes from the dataset's uint8 cache: files decoded each epoch could
    change or fail between epochs."""
    order = np.ascontiguousarray(data.epoch_indices(epoch), np.int64)
    if len(order) and int(order.max()) >= data.engine_dataset.cached_count:
        return 0
    serial = data.__dict__.get("_feature_serial")
    if serial is None:
        serial = data._feature_serial = next(_serials)
    h = hashlib.blake2b(digest_size=8)
    h.update(np.array([serial, id(data.engine_dataset), data.batch_size], np.int64).tobytes())
    h.update(order.tobytes())
    return int.from_bytes(h.digest(), "little") or 1


def _run_pipeline_epoch(model, g, data, epoch, train, bar, metric, cbs):
    """A whole epoch in C (GIL released), with progress reported after each batch. An
    evaluation epoch replays the feature cache when it holds this dataset's (same bits as
    running it in full), else runs in full and records it."""
    from catdog import config

    _check_pipeline_labels(model, data)
    key = 0
    if not train:
        g.set_feature_cache_limit(config.get_feature_cache_bytes())
        key = _feature_key(data, epoch)

    def progress(batches, samples, loss_sum, correct):
        logs = {"loss": loss_sum / samples}
        if metric:
            logs[metric] = correct / samples
        if bar is not None:
            bar.update(int(batches), logs)
        if cbs is not None:
            cbs.on_train_batch_end(int(batches) - 1, logs)
        return bool(model.stop_training) if train else False

    callback = progress if (bar is not None or cbs is not None) else None
    st = g.eval_cached(key, callback) if key else None
    if st is not None:
        return st["batches"], st["samples"], st["loss_sum"], st["correct"]
    known = len(data.engine_dataset.failures())  # before the loader's workers start decoding
    loader = data.loader(epoch, training=train, layers=model._augment if train else ())
    try:
        st = g.run_epoch(loader, bool(train), callback, key)
    finally:
        if train:
            model._mark_trained()
    data._report_new_failures(known)  # uncached files that failed to decode this epoch
    return st["batches"], st["samples"], st["loss_sum"], st["correct"]


def fit(model, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
        validation_data=None, shuffle=True, initial_epoch=0):
    """Keras fit(): per epoch the running mean of loss and accuracy (weighted by batch size,
    as Keras 3), validation at the end of the epoch, callbacks. Ctrl-C stops at a batch
    boundary: the model keeps the weights of the last finished batch, model.history the
    finished epochs, and KeyboardInterrupt is raised again (as Keras) so the caller stops too."""
    from catdog import random as _random

    batch_size = _checks.batch_size(batch_size, "fit")
    _checks.data(model, x, y, "fit")
    if isinstance(validation_data, tuple) and len(validation_data) == 2:
        _checks.data(model, *validation_data, "fit(validation_data=...)")
    elif validation_data is not None:
        _checks.data(model, validation_data, None, "fit(validation_data=...)")
    size = _data_size(x)  # None: a free-size model's graph is picked per batch
    c = _require_compiled(model)
    g = None if size is None and model._free_size() else _engine_ready(model, size, True)
    history = History()
    cbs = CallbackList(list(callbacks or []) + [history], model)
    verbose = 1 if verbose == "auto" else int(verbose)
    if epochs <= initial_epoch:
        raise ValueError(f"epochs ({epochs}) must be greater than initial_epoch ({initial_epoch})")
    seed = _random.get_seed()
    model.stop_training = False
    cbs.on_train_begin()
    steps = _num_batches(x, y, batch_size)
    metric = c.metric_name
    try:
        for epoch in range(initial_epoch, epochs):
            if g is not None:  # validation may have run on another size's graph
                g = _engine_ready(model, size, training=True)
            cbs.on_epoch_begin(epoch)
            model._push_changed()  # weights a callback set (on_epoch_end/begin) train from here
            bar = StepBar(steps, f"Epoch {epoch + 1}/{epochs}", verbose)
            t0 = time.time()
            if _is_pipeline(x):
                batches, seen, total_loss, total_correct = _run_pipeline_epoch(
                    model, g, x, epoch, True, bar, metric, cbs)
            else:
                total_loss = total_correct = 0.0
                seen = batches = 0
                for b, (xb, yb) in enumerate(_batches(x, y, batch_size, shuffle, seed, epoch)):
                    xb = model._check_x(xb)
                    yb = _labels(yb, model, len(xb))
                    _checks.labels(model, yb, "fit")
                    if size is None:
                        g = _engine_ready(model, xb.shape[1:3], training=True)
                    xb = _augment(model, xb, seed, epoch, b)
                    loss, correct = g.train_step(xb, yb)
                    model._mark_trained()
                    batches += 1
                    total_loss += float(loss) * len(xb)  # Keras 3: mean weighted by batch size
                    total_correct += correct
                    seen += len(xb)
                    logs = {"loss": total_loss / seen}
                    if metric:
                        logs[metric] = total_correct / seen
                    bar.update(batches, logs)
                    cbs.on_train_batch_end(b, logs)
                    model._push_changed()
                    if model.stop_training:
                        break
            if batches == 0:
                raise ValueError("the training data yielded no batches")
            logs = {"loss": total_loss / seen}
            if metric:
                logs[metric] = total_correct / seen
            if validation_data is not None:
                cbs.on_test_begin()
                if isinstance(validation_data, tuple) and len(validation_data) == 2:
                    vl = evaluate(model, *validation_data, batch_size=batch_size, verbose=0,
                                  return_dict=True)
                else:
                    vl = evaluate(model, validation_data, verbose=0, return_dict=True)
                cbs.on_test_end(dict(vl))
                logs.update({f"val_{k}": v for k, v in vl.items()})
            bar.finish(logs, time.time() - t0, steps=batches)
            cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    except KeyboardInterrupt:  # the graph keeps the last finished batch's weights
        if verbose:
            print("\nTraining interrupted: the model keeps the weights of the last completed "
                  "batch; History holds the completed epochs.")
        # as Keras: the interrupt goes on to the caller (a script or "run all" stops here)
        # once the model and model.history are usable
        cbs.on_train_end()
        model.history = history
        raise
    # no explicit pull: layers fetch the trained weights from the graph when read
    cbs.on_train_end()
    model.history = history
    return history


def evaluate(model, x=None, y=None, batch_size=32, verbose="auto", return_dict=False,
             callbacks=None):
    """Loss (mean over images) and accuracy in inference mode (no augmentation, no dropout).
    `callbacks` get on_test_begin / on_test_end(logs), as Keras's evaluate."""
    batch_size = _checks.batch_size(batch_size, "evaluate")
    _checks.data(model, x, y, "evaluate")
    size = _data_size(x)  # None: a free-size model's graph is picked per batch
    c = _require_compiled(model)
    g = None if size is None and model._free_size() else _engine_ready(model, size)
    cbs = CallbackList(list(callbacks or []), model)
    cbs.on_test_begin()
    # Keras: verbose "auto" (the default) and 1 draw a progress line, 2 one line at the end
    bar = StepBar(_num_batches(x, y, batch_size), "", 1 if verbose == "auto" else int(verbose))
    t0 = time.time()
    if _is_pipeline(x):
        batches, n, total_loss, total_correct = _run_pipeline_epoch(
            model, g, x, 0, False, bar if bar.verbose else None, c.metric_name, None)
    else:
        total_loss = total_correct = 0.0
        n = batches = 0
        for xb, yb in _batches(x, y, batch_size):
            xb = model._check_x(xb)
            yb = _labels(yb, model, len(xb))
            _checks.labels(model, yb, "evaluate")
            if size is None:
                g = _engine_ready(model, xb.shape[1:3])
            loss, correct = g.eval_step(xb, yb)
            total_loss += float(loss) * len(xb)
            total_correct += correct
            n += len(xb)
            batches += 1
            logs = {"loss": total_loss / n}
            if c.metric_name:
                logs[c.metric_name] = total_correct / n
            bar.update(batches, logs)
    if n == 0:
        raise ValueError("evaluate() got no data")
    out = {"loss": total_loss / n}
    if c.metric_name:
        out[c.metric_name] = total_correct / n
    bar.finish(out, time.time() - t0, steps=batches)
    cbs.on_test_end(dict(out))
    if return_dict:
        return out
    return list(out.values()) if len(out) > 1 else out["loss"]
