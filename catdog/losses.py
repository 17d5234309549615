"""Losses on logits, computed in C (csrc/nn/loss.c)."""
from __future__ import annotations

from catdog import _engine

BCE_LOGITS, SPARSE_CE_LOGITS = _engine.LOSS_BCE_LOGITS, _engine.LOSS_SPARSE_CE_LOGITS


class Loss:
    kind = -1
    name = "loss"


class BinaryCrossentropy(Loss):
    """Binary cross-entropy, batch mean. catdog's engine takes logits: from_logits=True."""

    kind = BCE_LOGITS

    def __init__(self, from_logits=False, name="binary_crossentropy"):
        if not from_logits:
            raise ValueError("catdog computes BinaryCrossentropy on logits: use "
                             "BinaryCrossentropy(from_logits=True) with a linear Dense(1) output")
        self.from_logits, self.name = True, name


class SparseCategoricalCrossentropy(Loss):
    kind = SPARSE_CE_LOGITS

    def __init__(self, from_logits=False, name="sparse_categorical_crossentropy"):
        if not from_logits:
            raise ValueError("catdog computes SparseCategoricalCrossentropy on logits: use "
                             "from_logits=True with a linear Dense(classes) output")
        self.from_logits, self.name = True, name


def get(identifier) -> Loss:
    if isinstance(identifier, Loss):
        return identifier
    if identifier in ("binary_crossentropy_logits",):
        return BinaryCrossentropy(from_logits=True)
    if identifier in ("sparse_categorical_crossentropy_logits",):
        return SparseCategoricalCrossentropy(from_logits=True)
    raise ValueError(f"unknown loss {identifier!r}; use catdog.losses.BinaryCrossentropy("
                     "from_logits=True) or SparseCategoricalCrossentropy(from_logits=True)")
