"""catdog.layers.experimental.preprocessing: the TF 2.3-2.5 names of the preprocessing layers
(RandomFlip, RandomRotation, Rescaling, ... as the 2020-2022 tutorial writes them). It is the
module catdog.layers.preprocessing itself, so both spellings give the same classes."""
import sys

from catdog.layers import preprocessing  # noqa: F401

sys.modules[__name__ + ".preprocessing"] = preprocessing
