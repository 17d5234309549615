"""catdog: the MobileNetV2 transfer-learning lab on a C engine built on oneDNN.

Write `catdog` where the lab says `tf.keras`:

    import catdog
    from catdog import layers
    base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False)
"""
from catdog import _libs

_libs.preload()

try:
    from catdog import _engine  # noqa: E402
except ImportError as e:  # pragma: no cover - exercised by tests/test_packaging.py in a subprocess
    import glob as _glob
    import os as _os

    _here = _os.path.dirname(_os.path.abspath(__file__))
    if not _glob.glob(_os.path.join(_here, "_engine*.so")):
        raise ImportError(
            f"catdog's C engine is not built in {_here}: this is the unbuilt source folder, which "
            "Python found before any installed catdog because the current folder comes first on "
            "sys.path. Either build it in place (`pip install -e .` in the clone's root), or run "
            "from another folder (the README's `bash scripts/lab.sh` and `bash scripts/test.sh` "
            "do this for you).") from e
    raise

_engine.init()

from catdog import activations, callbacks, config, layers, losses, metrics, optimizers, random  # noqa: E402,F401,E501
from catdog.models import Input, Model, Sequential  # noqa: E402,F401
from catdog import applications, datasets, plot, utils  # noqa: E402,F401
from catdog import data, ops, preprocessing  # noqa: E402,F401
from catdog import saving  # noqa: E402,F401
from catdog import lite  # noqa: E402,F401  (tf.lite: TFLiteConverter, LiteRT's Interpreter)

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Threads used by oneDNN and catdog's own loops (same seed + same threads => same bits)."""
    _engine.set_num_threads(int(n))


def get_num_threads() -> int:
    return _engine.get_num_threads()
