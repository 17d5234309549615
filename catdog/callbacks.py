"""Keras-style callbacks: History, EarlyStopping, ModelCheckpoint, LambdaCallback."""
from __future__ import annotations

import math
import weakref
from typing import Callable, Optional

import numpy as np


class Callback:
    # The model is held weakly: fit() leaves model.history (a History callback) on the model,
    # and a strong reference back would keep every dropped model and its engine graph alive
    # until the cycle collector ran.
    _model_ref = None

    @property
    def model(self):
        return self._model_ref() if self._model_ref is not None else None

    @model.setter
    def model(self, model):
        self._model_ref = None if model is None else weakref.ref(model)

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    # Keras calls these around evaluation: fit's validation pass at each epoch's end, and
    # evaluate(callbacks=...). logs at the end hold the evaluation's loss and metrics.
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...


class History(Callback):
    """`epoch`: epoch indices run; `history`: metric name -> list of values per epoch."""

    def __init__(self):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))


class CallbackList:
    def __init__(self, callbacks, model):
        self.callbacks = callbacks
        for c in callbacks:
            c.set_model(model)

    def __getattr__(self, name):
        # As Keras's CallbackList: logs always go positionally (a dict, {} when none), so a
        # LambdaCallback(on_train_begin=lambda logs: ...) gets the argument it declares.
        takes_index = name.startswith("on_epoch_") or "_batch_" in name

        def call(*args):
            if takes_index:
                index, logs = args[0], (args[1] if len(args) > 1 else None)
                args = (index, {} if logs is None else logs)
            else:
                args = ({} if not args or args[0] is None else args[0],)
            for c in self.callbacks:
                getattr(c, name)(*args)
        return call


class LambdaCallback(Callback):
    """Plain per-epoch / per-batch hooks: LambdaCallback(on_epoch_end=lambda epoch, logs: ...)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_end=None, **hooks):
        # Keras takes the other hooks (on_test_begin=..., ...) as keyword arguments too
        unknown = [k for k in hooks if not (k.startswith("on_") and hasattr(Callback, k))]
        if unknown:
            raise TypeError(f"LambdaCallback: unknown hook(s) {', '.join(sorted(unknown))}")
        hooks.update(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_end=on_train_batch_end)
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)


def _better(monitor: str, mode: str):
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)


class EarlyStopping(Callback):
    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 restore_best_weights=False):
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(min_delta)
        self.better = _better(monitor, mode)
        self.sign = 1 if (mode == "max" or (mode == "auto" and "acc" in monitor)) else -1
        self.restore_best_weights = restore_best_weights
        self.best, self.wait, self.best_weights, self.stopped_epoch = None, 0, None, 0

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.best_weights = None, 0, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(f"EarlyStopping monitors '{self.monitor}', which is not in the logs "
                             f"({', '.join(logs or {})})")
        if self.best is None or self.better(value - self.sign * self.min_delta, self.best):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience - 1 if self.patience else True:
            self.model.stop_training = True
            self.stopped_epoch = epoch
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Saves weights (catdog .npz or Keras .h5 by extension) after each epoch, or only when
    `monitor` improved (save_best_only). `filepath` may hold {epoch} and log keys."""

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto",
                 save_weights_only=True):
        self.filepath, self.monitor, self.save_best_only = str(filepath), monitor, save_best_only
        self.better = _better(monitor, mode)
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                raise ValueError(f"ModelCheckpoint monitors '{self.monitor}', not in the logs")
            if self.best is not None and not self.better(value, self.best):
                return
            self.best = value
        self.model.save_weights(self.filepath.format(epoch=epoch + 1, **logs))
