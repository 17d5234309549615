"""catdog.data.experimental: tf.data.experimental's names the tutorial uses."""
AUTOTUNE = -1


def cardinality(dataset) -> int:
    """Number of batches of `dataset` (tf.data.experimental.cardinality(ds); ds.cardinality())."""
    if not hasattr(dataset, "cardinality"):
        raise TypeError(f"cardinality() takes a catdog dataset, got {type(dataset).__name__}")
    return int(dataset.cardinality())


__all__ = ["AUTOTUNE", "cardinality"]
