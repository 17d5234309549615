"""The optimizer's state in a `.keras` file, as Keras 3 stores it: the group `optimizer/vars`
of model.weights.h5 (keras/src/optimizers/base_optimizer.py: `iterations` (int64 scalar),
`learning_rate` (float32 scalar), then the variables `build` made, in order).

Order of the slot variables over the model's trainable weights w_0..w_n-1 (Keras's
trainable_variables order, which is catdog's layer order):
* Adam: m_0, v_0, m_1, v_1, ... (`add_optimizer_variables(var_list, ["momentum",
  "velocity"])` interleaves them);
* RMSprop: v_0..v_n-1, then momentum_0.. if momentum > 0, then average_gradient_0.. if
  centered (one `add_optimizer_variables` call each);
* SGD: momentum_0.. if momentum != 0, else nothing.
catdog's engine keeps the same slots per weight (csrc/optim/optimizer.c: Adam m, v; RMSprop
v, momentum, mean gradient; SGD momentum) and `iterations` as the t of Adam's bias
correction, so a model saved mid-training, by catdog or by Keras, resumes where it stopped.
"""
from __future__ import annotations

import warnings

import numpy as np


def _trainable(model):
    """[(graph node, weight index, shape)] of the trainable weights, Keras's order."""
    out = []
    for layer, tr in model._trainable_map():
        if not tr:
            continue
        # through the weight map: a layer's weights may sit on several nodes, or skip slots
        # (SeparableConv2D; BatchNormalization without gamma or beta)
        for (i, w), (_, value, can_train) in zip(model._weight_slots[id(layer)], layer._weights):
            if can_train:
                out.append((i, w, value.shape))
    return out


def _layout(opt, n):
    """[(weight k, slot s)] in the order Keras writes the optimizer's variables."""
    kind = type(opt).__name__
    if kind == "Adam":
        return [(k, s) for k in range(n) for s in (0, 1)]
    if kind == "RMSprop":
        out = [(k, 0) for k in range(n)]
        slot = 1
        if opt.momentum > 0:
            out += [(k, slot) for k in range(n)]
            slot += 1
        if opt.centered:
            out += [(k, slot) for k in range(n)]
        return out
    if kind == "SGD":
        return [(k, 0) for k in range(n)] if opt.momentum != 0 else []
    return None


def arrays_to_save(model):
    """[iterations, learning_rate, slots...] for `optimizer/vars`, or None when the engine
    holds no optimizer state yet (compile() called, no step run)."""
    compiled = getattr(model, "_compiled", None)
    g = model._graph
    if compiled is None or g is None or not getattr(model, "_engine_compiled", False):
        return None
    weights = _trainable(model)
    layout = _layout(compiled.optimizer, len(weights))
    if layout is None:
        return None
    out = [np.int64(g.opt_iterations()), np.float32(compiled.optimizer.learning_rate)]
    for k, s in layout:
        i, w, _ = weights[k]
        out.append(g.get_opt_slot(i, w, s))
    return out


def restore(source, model, arrays) -> None:
    """Set the engine's optimizer state from a file's `optimizer/vars` arrays (already read
    and dtype-checked); a file whose state does not fit the model (another optimizer or
    trainable set) keeps a fresh optimizer with a warning, as Keras does."""
    from catdog import training

    g = training._engine_ready(model)
    weights = _trainable(model)
    layout = _layout(model._compiled.optimizer, len(weights))
    if layout is None or len(arrays) != 2 + len(layout):
        warnings.warn(f"{source}: the optimizer state in the file has {len(arrays)} variables, "
                      f"the compiled optimizer {2 + len(layout or [])}: starting it fresh",
                      stacklevel=4)
        return
    iterations = arrays[0]
    if iterations.shape != () or not 0 <= int(iterations) < 1 << 62:
        raise ValueError(f"{source}: optimizer iterations must be a scalar >= 0, got "
                         f"{iterations!r}")
    for (k, s), a in zip(layout, arrays[2:]):
        i, w, shape = weights[k]
        if a.shape != shape:
            raise ValueError(f"{source}: optimizer variable for trainable weight {k} has shape "
                             f"{a.shape}, the weight {shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{source}: optimizer variable for trainable weight {k} has NaN "
                             "or Inf values")
    for (k, s), a in zip(layout, arrays[2:]):
        i, w, _ = weights[k]
        g.set_opt_slot(i, w, s, np.ascontiguousarray(a, np.float32))
    g.opt_iterations(int(iterations))
