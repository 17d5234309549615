"""Seeds. catdog.random.set_seed(s) makes weight initialisation, dropout, shuffling and
augmentation reproducible (same seed and thread count => same bits)."""
import zlib

import numpy as np

_seed = 1337


def set_seed(seed: int) -> None:
    global _seed
    _seed = int(seed)


def get_seed() -> int:
    return _seed


def layer_rng(layer_name: str) -> np.random.Generator:
    """RNG for a layer's initial weights, keyed by the global seed and the layer's name."""
    return np.random.default_rng([_seed, zlib.crc32(layer_name.encode())])
