"""catdog.activations: the activation functions Keras layers take by name (`activation=` of
Conv2D, DepthwiseConv2D and Dense, and the Activation layer), as Keras 3 defines them
(keras/src/activations/activations.py). In a model each runs in the engine
(csrc/nn/activation.c); the functions here are the same formulas on NumPy arrays.

    layers.Conv2D(16, 3, padding="same", activation="relu")
    layers.Activation("swish")          # also activation=catdog.activations.swish
"""
import numpy as np

from catdog import _engine

# Keras's names (and its aliases) -> the engine's function codes
_CODES = {
    None: _engine.ACTIVATION_LINEAR, "linear": _engine.ACTIVATION_LINEAR,
    "relu": _engine.ACTIVATION_RELU, "relu6": _engine.ACTIVATION_RELU6,
    "sigmoid": _engine.ACTIVATION_SIGMOID, "tanh": _engine.ACTIVATION_TANH,
    "softmax": _engine.ACTIVATION_SOFTMAX,
    "silu": _engine.ACTIVATION_SILU, "swish": _engine.ACTIVATION_SILU,
    "hard_sigmoid": _engine.ACTIVATION_HARD_SIGMOID,
    "hard_silu": _engine.ACTIVATION_HARD_SILU, "hard_swish": _engine.ACTIVATION_HARD_SILU,
    "gelu": _engine.ACTIVATION_GELU, "elu": _engine.ACTIVATION_ELU,
    "selu": _engine.ACTIVATION_SELU, "softplus": _engine.ACTIVATION_SOFTPLUS,
}
_SELU_ALPHA, _SELU_SCALE = 1.67326324, 1.05070098


def code(activation, layer_name="layer"):
    """The engine code of `activation`: None, a Keras name, or one of this module's functions
    (matched by name, as Keras serializes a function)."""
    key = activation
    if callable(activation):
        key = getattr(activation, "__name__", None)
    if isinstance(key, str):
        key = key.lower()
    if key not in _CODES:
        names = sorted(k for k in _CODES if k)
        raise ValueError(f"layer '{layer_name}': unknown activation {activation!r}; catdog "
                         f"knows {', '.join(names)}")
    return _CODES[key]


def name_and_code(activation, layer_name="layer"):
    """(the name a layer keeps in .activation: None or a lower-case Keras name, its code)."""
    c = code(activation, layer_name)
    name = getattr(activation, "__name__", activation) if callable(activation) else activation
    return (name.lower() if isinstance(name, str) else None), c


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def linear(x):
    return np.asarray(x)


def relu(x):
    return np.maximum(x, 0)


def relu6(x):
    return np.clip(x, 0, 6)


def sigmoid(x):
    return _sigmoid(np.asarray(x))


def tanh(x):
    return np.tanh(x)


def softmax(x, axis=-1):
    x = np.asarray(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def silu(x):
    x = np.asarray(x)
    return x * _sigmoid(x)


def hard_sigmoid(x):
    return np.clip(np.asarray(x) + 3, 0, 6) / 6


def hard_silu(x):
    x = np.asarray(x)
    return x * hard_sigmoid(x)


def gelu(x, approximate=False):
    from math import erf, sqrt

    x = np.asarray(x)
    if approximate:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(erf)(x / sqrt(2)))


def elu(x, alpha=1.0):
    x = np.asarray(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def selu(x):
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


def softplus(x):
    x = np.asarray(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


swish, hard_swish = silu, hard_silu


def get(identifier):
    """Keras's activations.get: a name or a function -> the function."""
    code(identifier)
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    name = {"swish": "silu", "hard_swish": "hard_silu"}.get(identifier.lower(), identifier.lower())
    return globals()[name]
