"""Accuracy metrics, counted in C per batch; fit() reports the running mean over the epoch.

Each is on what the model outputs (probabilities after a sigmoid/softmax head, else the raw
outputs). The string "accuracy" (or "acc") is resolved at compile() from the loss, as Keras
picks it from the shapes: BinaryAccuracy for BinaryCrossentropy, SparseCategoricalAccuracy
for integer labels, CategoricalAccuracy for one-hot labels. Keras's BinaryAccuracy threshold
is 0.5 even on logits; catdog uses 0 there (a linear head with from_logits=True), which is
the same decision as 0.5 on the sigmoid, and 0.5 on probabilities."""
from __future__ import annotations


class Metric:
    name = "metric"
    family = ""  # the loss family it goes with (catdog.losses.Loss.family)
    threshold = 0.0


class BinaryAccuracy(Metric):
    """Fraction with (output > threshold) == label. On logits use threshold=0 (as the lab)."""

    family = "binary"

    def __init__(self, threshold=0.5, name="binary_accuracy"):
        self.threshold, self.name = float(threshold), name


class SparseCategoricalAccuracy(Metric):
    """argmax(output) == integer label."""

    family = "sparse"

    def __init__(self, name="sparse_categorical_accuracy"):
        self.name = name


class CategoricalAccuracy(Metric):
    """argmax(output) == argmax(one-hot label)."""

    family = "categorical"

    def __init__(self, name="categorical_accuracy"):
        self.name = name


class _Accuracy(Metric):
    """"accuracy": the kind is chosen at compile() (resolve)."""

    def __init__(self, name="accuracy"):
        self.name = name


def resolve(metric: Metric, loss, head_activation=None) -> Metric:
    """The concrete metric for `metric` compiled with `loss` on a model whose last Dense has
    `head_activation`; a mismatch (say BinaryAccuracy with a categorical loss) raises."""
    if isinstance(metric, _Accuracy):
        if metric.name == "binary_accuracy" and loss.family != "binary":
            raise ValueError(f"metric 'binary_accuracy' does not go with {type(loss).__name__}: "
                             "use metrics=['accuracy']")
        if loss.family == "binary":
            on_logits = loss.from_logits and head_activation != "sigmoid"
            return BinaryAccuracy(threshold=0.0 if on_logits else 0.5, name=metric.name)
        if loss.family == "sparse":
            return SparseCategoricalAccuracy(name=metric.name)
        return CategoricalAccuracy(name=metric.name)
    if metric.family != loss.family:
        raise ValueError(f"metric {type(metric).__name__} does not go with {type(loss).__name__}"
                         " (catdog counts the accuracy of the loss's labels): use "
                         "metrics=['accuracy']")
    return metric


def get(identifier) -> Metric:
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if identifier in ("accuracy", "acc"):
        return _Accuracy(name=identifier)
    if identifier == "binary_accuracy":
        return _Accuracy(name="binary_accuracy")
    if identifier == "sparse_categorical_accuracy":
        return SparseCategoricalAccuracy()
    if identifier == "categorical_accuracy":
        return CategoricalAccuracy()
    raise ValueError(f"unknown metric {identifier!r}; catdog has 'accuracy', 'binary_accuracy', "
                     "'sparse_categorical_accuracy', 'categorical_accuracy'")
