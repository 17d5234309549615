"""Seeds. catdog.random.set_seed(s) makes weight initialisation, dropout, shuffling and
augmentation reproducible: same seed, same model-building code and same thread count =>
same bits (as keras.utils.set_random_seed)."""
import numpy as np

_seed = 1337
_draws = 0
_eager_draws = 0


def set_seed(seed: int) -> None:
    """Set the global seed and restart the sequences of initialisers and of eager
    augmentation seeds drawn from it."""
    global _seed, _draws, _eager_draws
    _seed = int(seed)
    _draws = 0
    _eager_draws = 0


def eager_seed() -> int:
    """Seed of the next direct call of an augmentation layer made without `seed=`: keyed by
    the global seed and the number of such calls since set_seed, so every call draws anew
    and the same seed replays the same sequence (Keras 3: unseeded layers draw from the
    global SeedGenerator that keras.utils.set_random_seed seeds). A ``Dataset.map`` that
    augments is then reproducible too."""
    global _eager_draws
    _eager_draws += 1
    rng = np.random.default_rng([_seed & ((1 << 64) - 1), _eager_draws, 0xEA6E])
    return int(rng.integers(0, 1 << 63))


def get_seed() -> int:
    return _seed


def layer_rng(layer_name: str = "") -> np.random.Generator:
    """RNG for the next layer's initial weights: keyed by the global seed and the order in
    which layers were built since set_seed (not by name, which Keras numbers globally)."""
    global _draws
    _draws += 1
    return np.random.default_rng([_seed, _draws])
