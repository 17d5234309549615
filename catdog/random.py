"""Seeds. catdog.random.set_seed(s) makes weight initialisation, dropout, shuffling and
augmentation reproducible: same seed, same model-building code and same thread count =>
same bits (as keras.utils.set_random_seed)."""
import numpy as np

_seed = 1337
_draws = 0


def set_seed(seed: int) -> None:
    """Set the global seed and restart the sequence of initialisers drawn from it."""
    global _seed, _draws
    _seed = int(seed)
    _draws = 0


def get_seed() -> int:
    return _seed


def layer_rng(layer_name: str = "") -> np.random.Generator:
    """RNG for the next layer's initial weights: keyed by the global seed and the order in
    which layers were built since set_seed (not by name, which Keras numbers globally)."""
    global _draws
    _draws += 1
    return np.random.default_rng([_seed, _draws])
