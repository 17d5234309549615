"""Crossentropy and regression losses, computed in C (csrc/nn/loss.c) as Keras 3 computes them
(keras/src/losses/losses.py: mean_squared_error, mean_absolute_error, huber are the mean over
the last axis, then the batch mean).

On probabilities (from_logits=False, Keras's default) outputs are clipped to
[1e-7, 1 - 1e-7] — except right after a Dense head with the loss's activation (sigmoid for
BinaryCrossentropy, softmax for the categorical ones): there, as Keras does, the loss is
computed on the head's logits (no clipping; exact for confident predictions)."""
from __future__ import annotations

from catdog import _engine

# the engine's cd_loss_kind codes (csrc/catdog.h), exported by the binding
BCE_LOGITS, SPARSE_CE_LOGITS = _engine.LOSS_BCE_LOGITS, _engine.LOSS_SPARSE_CE_LOGITS
BCE, SPARSE_CE = _engine.LOSS_BCE, _engine.LOSS_SPARSE_CE
CE_LOGITS, CE = _engine.LOSS_CE_LOGITS, _engine.LOSS_CE
MSE, MAE, HUBER = _engine.LOSS_MSE, _engine.LOSS_MAE, _engine.LOSS_HUBER
EPSILON = 1e-7  # keras.config.epsilon(), the clip of probabilities


class Loss:
    kind = -1
    name = "loss"
    family = ""  # "binary" | "sparse" | "categorical": which labels and accuracy go with it
    activation = None  # the head activation whose logits the loss uses (Keras _keras_logits)

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None, reduction=None):
        if label_smoothing:
            raise ValueError(f"{type(self).__name__}: label_smoothing is not supported")
        if reduction not in (None, "sum_over_batch_size", "auto"):
            raise ValueError(f"{type(self).__name__}: only the batch mean (reduction="
                             f"'sum_over_batch_size') is supported, got {reduction!r}")
        self.from_logits = bool(from_logits)
        self.kind = self._kinds[self.from_logits]
        if name is not None:
            self.name = name

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self):
        return f"<{type(self).__name__} from_logits={self.from_logits}>"


class BinaryCrossentropy(Loss):
    """Binary crossentropy, batch mean: one output per image (Dense(1) logits, or a
    Dense(1, activation="sigmoid") head with from_logits=False), labels 0/1."""

    name, family, activation = "binary_crossentropy", "binary", "sigmoid"
    _kinds = {False: BCE, True: BCE_LOGITS}


class SparseCategoricalCrossentropy(Loss):
    """Crossentropy with integer class labels (label_mode='int') on k outputs."""

    name, family, activation = "sparse_categorical_crossentropy", "sparse", "softmax"
    _kinds = {False: SPARSE_CE, True: SPARSE_CE_LOGITS}


class CategoricalCrossentropy(Loss):
    """Crossentropy with one-hot labels (label_mode='categorical') on k outputs."""

    name, family, activation = "categorical_crossentropy", "categorical", "softmax"
    _kinds = {False: CE, True: CE_LOGITS}


class _Regression(Loss):
    """A regression loss on k outputs against k float targets per sample."""

    family = "regression"

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction=reduction, name=name)

    def get_config(self):
        return {"name": self.name}


class MeanSquaredError(_Regression):
    name = "mean_squared_error"
    _kinds = {False: MSE, True: MSE}


class MeanAbsoluteError(_Regression):
    name = "mean_absolute_error"
    _kinds = {False: MAE, True: MAE}


class Huber(_Regression):
    """Huber loss; catdog computes Keras's default delta=1.0 only."""

    name = "huber_loss"
    _kinds = {False: HUBER, True: HUBER}

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None):
        if float(delta) != 1.0:
            raise ValueError(f"Huber: catdog computes delta=1.0 only, got {delta}")
        super().__init__(reduction=reduction, name=name)


_BY_NAME = {
    "binary_crossentropy": (BinaryCrossentropy, False),
    "bce": (BinaryCrossentropy, False),
    "binarycrossentropy": (BinaryCrossentropy, False),
    "binary_crossentropy_logits": (BinaryCrossentropy, True),
    "sparse_categorical_crossentropy": (SparseCategoricalCrossentropy, False),
    "sparsecategoricalcrossentropy": (SparseCategoricalCrossentropy, False),
    "sparse_categorical_crossentropy_logits": (SparseCategoricalCrossentropy, True),
    "categorical_crossentropy": (CategoricalCrossentropy, False),
    "cce": (CategoricalCrossentropy, False),
    "categoricalcrossentropy": (CategoricalCrossentropy, False),
    "categorical_crossentropy_logits": (CategoricalCrossentropy, True),
    "mean_squared_error": (MeanSquaredError, False),
    "mse": (MeanSquaredError, False),
    "meansquarederror": (MeanSquaredError, False),
    "mean_absolute_error": (MeanAbsoluteError, False),
    "mae": (MeanAbsoluteError, False),
    "meanabsoluteerror": (MeanAbsoluteError, False),
    "huber": (Huber, False),
    "huber_loss": (Huber, False),
}


def get(identifier) -> Loss:
    """A Loss object, or a Keras string name ("binary_crossentropy", ...: from_logits=False)."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        cls, logits = _BY_NAME[identifier.lower()]
        loss = cls() if issubclass(cls, _Regression) else cls(from_logits=logits)
        loss.name = identifier
        return loss
    raise ValueError(f"unknown loss {identifier!r}; catdog has {', '.join(sorted(n for n in _BY_NAME if '_' in n))} "
                     "and the classes BinaryCrossentropy, SparseCategoricalCrossentropy, "
                     "CategoricalCrossentropy, MeanSquaredError, MeanAbsoluteError, Huber")
