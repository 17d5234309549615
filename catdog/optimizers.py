"""Keras optimizers with Keras 3's defaults; the update rules run in C (csrc/optim).

`lr=` (Keras 2's name, in the 2019-2021 tutorial) is accepted with a DeprecationWarning that
names `learning_rate`; `catdog.optimizers.experimental.*` are the same classes (TF 2.9-2.11's
spelling)."""
from __future__ import annotations

import warnings
from types import SimpleNamespace

from catdog import _engine

SGD_KIND, ADAM_KIND, RMSPROP_KIND = _engine.OPT_SGD, _engine.OPT_ADAM, _engine.OPT_RMSPROP


def _learning_rate(learning_rate, default, kwargs, cls):
    """The learning rate from `learning_rate` or the deprecated `lr`; other unknown keyword
    arguments are an error, as in Keras."""
    if "lr" in kwargs:
        lr = kwargs.pop("lr")
        if learning_rate is not None:
            raise TypeError(f"{cls}: give learning_rate or lr, not both")
        warnings.warn(f"{cls}(lr=...) is deprecated (Keras 2); use learning_rate={lr!r}",
                      DeprecationWarning, stacklevel=3)
        learning_rate = lr
    if kwargs:
        raise TypeError(f"{cls}() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
    return default if learning_rate is None else learning_rate


class Optimizer:
    kind = -1

    def __init__(self, learning_rate: float, name: str):
        lr = float(learning_rate)
        if not lr >= 0.0:
            raise ValueError(f"learning_rate must be >= 0, got {learning_rate}")
        self.learning_rate = lr
        self.name = name

    def engine_config(self) -> dict:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": self.learning_rate, **self.engine_config()}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.get_config().items())})"


class SGD(Optimizer):
    kind = SGD_KIND

    def __init__(self, learning_rate=None, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(_learning_rate(learning_rate, 0.01, kwargs, "SGD"), name)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def engine_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    kind = ADAM_KIND

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="adam",
                 **kwargs):
        super().__init__(_learning_rate(learning_rate, 0.001, kwargs, "Adam"), name)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def engine_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class RMSprop(Optimizer):
    kind = RMSPROP_KIND

    def __init__(self, learning_rate=None, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="rmsprop", **kwargs):
        super().__init__(_learning_rate(learning_rate, 0.001, kwargs, "RMSprop"), name)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)

    def engine_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


experimental = SimpleNamespace(SGD=SGD, Adam=Adam, RMSprop=RMSprop)

_BY_NAME = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def get(identifier) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; use catdog.optimizers.Adam/RMSprop/SGD")
