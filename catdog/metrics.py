"""Accuracy metrics, counted in C per batch; fit() reports the running mean over the epoch."""
from __future__ import annotations


class Metric:
    name = "metric"


class BinaryAccuracy(Metric):
    """Fraction with (output > threshold) == label. On logits use threshold=0 (as the lab)."""

    def __init__(self, threshold=0.5, name="binary_accuracy"):
        self.threshold, self.name = float(threshold), name


class SparseCategoricalAccuracy(Metric):
    def __init__(self, name="sparse_categorical_accuracy"):
        self.name = name
        self.threshold = 0.0


def get(identifier) -> Metric:
    if isinstance(identifier, Metric):
        return identifier
    if identifier in ("accuracy", "acc", "binary_accuracy"):
        return BinaryAccuracy(threshold=0.0, name="accuracy")
    if identifier == "sparse_categorical_accuracy":
        return SparseCategoricalAccuracy()
    raise ValueError(f"unknown metric {identifier!r}")
