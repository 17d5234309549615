"""Engine settings: threads and arithmetic precision.

    catdog.config.set_precision("bf16")   # convolutions in bfloat16 (CPUs with AMX)
    catdog.config.set_precision("fp32")   # the default: exact float32, Keras parity

bf16 keeps tensors and weights in float32 and lets oneDNN compute the convolutions with
bfloat16 inputs (fpmath mode). oneDNN does that only on CPUs with AMX; elsewhere set_precision("bf16")
raises ValueError instead of silently staying in fp32. Not yet measured: no AMX machine was
at hand (see NOTES.md)."""
from catdog import _engine


def set_precision(precision: str) -> None:
    _engine.set_precision(str(precision))


def get_precision() -> str:
    return _engine.get_precision()


def set_num_threads(n: int) -> None:
    _engine.set_num_threads(int(n))


def get_num_threads() -> int:
    return _engine.get_num_threads()
