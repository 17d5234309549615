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


def _trainable_shapes(model):
    """Shapes of the trainable weights, Keras's order (Model._trainable_slots's)."""
    return [value.shape for layer, tr in model._trainable_map() if tr
            for (_, value, can_train) in layer._weights if can_train]


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
    if compiled is None:
        return None
    layout = _layout(compiled.optimizer, len(_trainable_shapes(model)))
    state = model._optimizer_state() if layout is not None else None
    if state is None:
        return None
    iterations, slots = state
    return ([np.int64(iterations), np.float32(compiled.optimizer.learning_rate)]
            + [slots[k, s] for k, s in layout])


def restore(source, model, arrays) -> None:
    """Set the engine's optimizer state from a file's `optimizer/vars` arrays (already read
    and dtype-checked); a file whose state does not fit the model (another optimizer or
    trainable set) keeps a fresh optimizer with a warning, as Keras does. A model with a free
    input size keeps the state until its first training step picks a graph."""
    from catdog import training

    training._require_compiled(model)
    shapes = _trainable_shapes(model)
    layout = _layout(model._compiled.optimizer, len(shapes))
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
        if a.shape != shapes[k]:
            raise ValueError(f"{source}: optimizer variable for trainable weight {k} has shape "
                             f"{a.shape}, the weight {shapes[k]}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{source}: optimizer variable for trainable weight {k} has NaN "
                             "or Inf values")
    state = (int(iterations), {(k, s): np.ascontiguousarray(a, np.float32)
                               for (k, s), a in zip(layout, arrays[2:])})
    if model._free_size():
        model._opt_owner, model._opt_snapshot = None, state
        return
    model._set_optimizer_state(training._engine_ready(model), state)
