"""Keras optimizers with Keras 3's defaults; the update rules run in C (csrc/optim)."""
from __future__ import annotations

from catdog import _engine

SGD_KIND, ADAM_KIND, RMSPROP_KIND = _engine.OPT_SGD, _engine.OPT_ADAM, _engine.OPT_RMSPROP


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

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD"):
        super().__init__(learning_rate, name)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def engine_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    kind = ADAM_KIND

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="adam"):
        super().__init__(learning_rate, name)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def engine_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class RMSprop(Optimizer):
    kind = RMSPROP_KIND

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="rmsprop"):
        super().__init__(learning_rate, name)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)

    def engine_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


_BY_NAME = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def get(identifier) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; use catdog.optimizers.Adam/RMSprop/SGD")
