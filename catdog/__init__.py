"""catdog: the MobileNetV2 transfer-learning lab on a C engine built on oneDNN."""
from catdog import _libs

_libs.preload()

from catdog import _engine  # noqa: E402

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Threads used by oneDNN and catdog's own loops (same seed + same threads => same bits)."""
    _engine.set_num_threads(int(n))


def get_num_threads() -> int:
    return _engine.get_num_threads()
