"""Engine settings: threads and arithmetic precision.

    catdog.config.set_precision("bf16")   # convolutions in bfloat16 (AVX512-BF16 or AMX)
    catdog.config.set_precision("fp32")   # the default: exact float32, Keras parity

In bf16 mode the frozen part of the network - every layer below the first trainable one in
training, the whole network in predict/evaluate - runs its fused Conv+BN(+ReLU6/+Add) blocks
on bfloat16 activations and weights, and the trainable Conv+BN(+ReLU6) blocks run their
convolutions (forward, backward-data, backward-weights) on bfloat16 operands with float32
accumulation. Master weights, weight gradients, optimizer state, the layers that run alone
(Add, pooling, Dense), the weights you read and every output you get stay float32. Results are
close to fp32, not equal (bf16 keeps 8 bits of mantissa): tests/test_engine_bf16.py states
the tolerances, benchmarks/RESULTS.md the lab's accuracy in both modes. CPUs without
AVX512-BF16 or AMX get a ValueError and stay in fp32.

    catdog.config.set_feature_cache_bytes(0)   # validation/evaluate always run in full

Within fit, validation images are not augmented and the layers below the first trainable
one do not change, so their output for the validation set is computed once (at most
FEATURE_CACHE_BYTES = 512 MiB per model) and reused each epoch, with the same bits; evaluate
on the same dataset object reuses it too. Datasets whose images are not all in their uint8
cache (cache=False or a smaller byte bound) are read in full every time.
"""
from catdog import _engine

# Feature cache (csrc/model/features.c): an evaluation epoch's output of the layers below the
# first trainable one, held per model and replayed while nothing below changes. Its bound in
# bytes; past it evaluation runs in full. 0 turns it off.
FEATURE_CACHE_BYTES = 512 << 20
_feature_cache_bytes = FEATURE_CACHE_BYTES


def set_feature_cache_bytes(n: int) -> None:
    global _feature_cache_bytes
    n = int(n)
    if n < 0:
        raise ValueError(f"feature cache bytes must be >= 0, got {n}")
    _feature_cache_bytes = n


def get_feature_cache_bytes() -> int:
    return _feature_cache_bytes


def set_precision(precision: str) -> None:
    _engine.set_precision(str(precision))


def get_precision() -> str:
    return _engine.get_precision()


def set_num_threads(n: int) -> None:
    _engine.set_num_threads(int(n))


def get_num_threads() -> int:
    return _engine.get_num_threads()
