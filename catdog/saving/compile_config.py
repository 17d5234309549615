"""A model's compile() arguments as Keras 3 stores them (`compile_config` in config.json:
keras/src/trainers/trainer.py `get_compile_config`, the optimizer, loss and metrics
serialized by serialization_lib) and back.

Written: the optimizer with every key Keras 3.15's `get_config` has (defaults for what catdog
does not have: no weight decay, clipping, EMA, loss scaling or gradient accumulation), the
loss as its class, the metric as its class (or the string "accuracy" when compile() was given
the string and no step ran yet). Read: the same, refusing values catdog cannot run (a
learning-rate schedule, clipping, weight decay, amsgrad, label smoothing) with an error that
names them."""
from __future__ import annotations

import math

from catdog import losses as losses_mod
from catdog import metrics as metrics_mod
from catdog import optimizers as optimizers_mod
from catdog.saving.serialization import ConfigError

_OPT_COMMON = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None,
               "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
               "ema_overwrite_frequency": None, "loss_scale_factor": None,
               "gradient_accumulation_steps": None}
_OPT_CLASSES = {optimizers_mod.Adam: "Adam", optimizers_mod.RMSprop: "RMSprop",
                optimizers_mod.SGD: "SGD"}
_LOSS_CLASSES = {losses_mod.BinaryCrossentropy: "BinaryCrossentropy",
                 losses_mod.SparseCategoricalCrossentropy: "SparseCategoricalCrossentropy",
                 losses_mod.CategoricalCrossentropy: "CategoricalCrossentropy"}


def _obj(module, cls, config):
    return {"module": module, "class_name": cls, "config": config, "registered_name": None}


def optimizer_config(opt) -> dict:
    cls = _OPT_CLASSES.get(type(opt))
    if cls is None:
        raise ConfigError(f"optimizer {type(opt).__name__} has no Keras config in catdog")
    cfg = {"name": opt.name, "learning_rate": opt.learning_rate, **_OPT_COMMON}
    if cls == "Adam":
        cfg.update(beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon, amsgrad=False)
    elif cls == "RMSprop":
        cfg.update(rho=opt.rho, momentum=opt.momentum, epsilon=opt.epsilon,
                   centered=opt.centered)
    else:
        cfg.update(momentum=opt.momentum, nesterov=opt.nesterov)
    return _obj("keras.optimizers", cls, cfg)


def loss_config(loss):
    given = loss.__dict__.get("name")  # compile(loss="sparse_categorical_crossentropy")
    if isinstance(given, str) and given in losses_mod._BY_NAME and not loss.from_logits:
        return given  # Keras keeps the string as given
    cls = _LOSS_CLASSES.get(type(loss))
    if cls is None:
        raise ConfigError(f"loss {type(loss).__name__} has no Keras config in catdog")
    # keras/src/losses/losses.py: LossFunctionWrapper.get_config = name, reduction and the
    # function's keyword arguments (the sparse one has ignore_class, not label_smoothing)
    cfg = {"name": type(loss).name, "reduction": "sum_over_batch_size",
           "from_logits": loss.from_logits}
    if cls == "SparseCategoricalCrossentropy":
        cfg.update(ignore_class=None, axis=-1)
    else:
        cfg.update(label_smoothing=0.0, axis=-1)
    return _obj("keras.losses", cls, cfg)


def metric_config(metric):
    if isinstance(metric, metrics_mod.BinaryAccuracy):
        return _obj("keras.metrics", "BinaryAccuracy",
                    {"name": metric.name, "dtype": "float32", "threshold": metric.threshold})
    if (metric.name in ("accuracy", "acc") and isinstance(
            metric, (metrics_mod.SparseCategoricalAccuracy, metrics_mod.CategoricalAccuracy))):
        return metric.name  # compile(metrics=["accuracy"]): Keras keeps the string
    if isinstance(metric, metrics_mod.SparseCategoricalAccuracy):
        return _obj("keras.metrics", "SparseCategoricalAccuracy",
                    {"name": metric.name, "dtype": "float32"})
    if isinstance(metric, metrics_mod.CategoricalAccuracy):
        return _obj("keras.metrics", "CategoricalAccuracy",
                    {"name": metric.name, "dtype": "float32"})
    return metric.name  # "accuracy" before compile() resolved it


def to_config(compiled) -> dict:
    return {"optimizer": optimizer_config(compiled.optimizer),
            "loss": loss_config(compiled.loss), "loss_weights": None,
            "metrics": [metric_config(m) for m in compiled.metrics] or None,
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}


# ---- reading ----------------------------------------------------------------------------
def _num(cfg, key, what, default, low=0.0, high=math.inf):
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or not low <= v <= high:
        raise ConfigError(f"compile_config {what}: {key} must be a number in [{low}, {high}], "
                          f"got {str(v)[:80]}")
    return float(v)


def optimizer_from(node):
    if isinstance(node, str):
        try:
            return optimizers_mod.get(node)
        except ValueError as e:
            raise ConfigError(f"compile_config optimizer: {e}") from None
    if not isinstance(node, dict) or not isinstance(node.get("config"), dict):
        raise ConfigError("compile_config optimizer: expected a Keras optimizer object")
    cls, cfg = node.get("class_name"), node["config"]
    what = f"optimizer {cls}"
    if not isinstance(cfg.get("learning_rate"), (int, float)) or isinstance(cfg.get("learning_rate"), bool):
        raise ConfigError(f"compile_config {what}: learning_rate must be a number (learning-"
                          "rate schedules are not supported)")
    for key, default in _OPT_COMMON.items():
        if cfg.get(key, default) != default and not (key == "ema_momentum"):
            raise ConfigError(f"compile_config {what}: {key}={cfg[key]!r} is not supported "
                              "by catdog")
    lr = _num(cfg, "learning_rate", what, None)
    name = cfg.get("name")
    name = name if isinstance(name, str) and len(name) < 256 else None
    kw = {"name": name} if name else {}
    if cls == "Adam":
        if cfg.get("amsgrad", False):
            raise ConfigError(f"compile_config {what}: amsgrad is not supported by catdog")
        return optimizers_mod.Adam(lr, _num(cfg, "beta_1", what, 0.9, 0, 1),
                                   _num(cfg, "beta_2", what, 0.999, 0, 1),
                                   _num(cfg, "epsilon", what, 1e-7, 0, 1), **kw)
    if cls == "RMSprop":
        if cfg.get("centered", False):
            raise ConfigError(f"compile_config {what}: centered=True is not supported by catdog")
        return optimizers_mod.RMSprop(lr, _num(cfg, "rho", what, 0.9, 0, 1),
                                      _num(cfg, "momentum", what, 0.0, 0, 1),
                                      _num(cfg, "epsilon", what, 1e-7, 0, 1), **kw)
    if cls == "SGD":
        return optimizers_mod.SGD(lr, _num(cfg, "momentum", what, 0.0, 0, 1),
                                  bool(cfg.get("nesterov", False)), **kw)
    raise ConfigError(f"compile_config: optimizer {cls!r} is not supported by catdog "
                      "(Adam, RMSprop, SGD)")


_LOSS_BY_CLASS = {v: k for k, v in _LOSS_CLASSES.items()}


def loss_from(node):
    if isinstance(node, str):
        try:
            return losses_mod.get(node)
        except ValueError as e:
            raise ConfigError(f"compile_config loss: {e}") from None
    if not isinstance(node, dict) or not isinstance(node.get("config"), dict):
        raise ConfigError("compile_config loss: expected a loss name or a Keras loss object")
    cls = _LOSS_BY_CLASS.get(node.get("class_name"))
    if cls is None:
        raise ConfigError(f"compile_config: loss {node.get('class_name')!r} is not supported by "
                          "catdog")
    cfg = node["config"]
    if cfg.get("label_smoothing", 0.0):
        raise ConfigError("compile_config loss: label_smoothing is not supported by catdog")
    if cfg.get("reduction", "sum_over_batch_size") not in ("sum_over_batch_size", "auto", None):
        raise ConfigError(f"compile_config loss: reduction {cfg['reduction']!r} is not supported")
    if cfg.get("axis", -1) != -1 or cfg.get("ignore_class") is not None:
        raise ConfigError("compile_config loss: axis / ignore_class are not supported")
    return cls(from_logits=bool(cfg.get("from_logits", False)))


def metric_from(node):
    if isinstance(node, str):
        try:
            return metrics_mod.get(node)
        except ValueError as e:
            raise ConfigError(f"compile_config metrics: {e}") from None
    if not isinstance(node, dict) or not isinstance(node.get("config"), dict):
        raise ConfigError("compile_config metrics: expected a metric name or object")
    cls, cfg = node.get("class_name"), node["config"]
    name = cfg.get("name")
    kw = {"name": name} if isinstance(name, str) and len(name) < 256 else {}
    if cls == "BinaryAccuracy":
        return metrics_mod.BinaryAccuracy(_num(cfg, "threshold", "BinaryAccuracy", 0.5,
                                               -math.inf), **kw)
    if cls == "SparseCategoricalAccuracy":
        return metrics_mod.SparseCategoricalAccuracy(**kw)
    if cls == "CategoricalAccuracy":
        return metrics_mod.CategoricalAccuracy(**kw)
    raise ConfigError(f"compile_config: metric {cls!r} is not supported by catdog")


def compile_from(model, cfg) -> None:
    """model.compile(...) with what `cfg` (a compile_config) says."""
    if not isinstance(cfg, dict):
        raise ConfigError("compile_config must be a JSON object")
    metrics = cfg.get("metrics") or []
    if isinstance(metrics, dict):
        metrics = list(metrics.values())
    if not isinstance(metrics, list) or len(metrics) > 1:
        raise ConfigError("compile_config: catdog tracks at most one accuracy metric")
    for key in ("loss_weights", "weighted_metrics"):
        if cfg.get(key):
            raise ConfigError(f"compile_config: {key} is not supported by catdog")
    try:
        model.compile(optimizer=optimizer_from(cfg.get("optimizer", "rmsprop")),
                      loss=loss_from(cfg.get("loss")),
                      metrics=[metric_from(m) for m in metrics])
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"compile_config: {e}") from None
