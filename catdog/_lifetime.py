"""Which models' engine graphs hold a layer, without keeping those models alive.

A layer shared by several models (the lab's base_model, rebuilt into a new Model each time
its notebook cell runs) lists the models whose graphs hold its weights, so that reading the
layer first fetches what one of them trained. The list holds weak references: a model that
nothing else references is freed with its engine graph (tens of MB of plans and buffers),
and hands its trained weights back to its layers as it goes (release()), so dropping a
model after fit loses nothing a layer would have read."""
from __future__ import annotations

import weakref

# The state a model's engine graph mirrors: every layer's `trainable` flag and weights, and
# which models hold newer weights than their layers. Anything that changes it bumps this
# counter; a model whose graph was brought up to date at the current value skips the
# per-layer walk on its next call.
_generation = 0


def generation() -> int:
    return _generation


def changed() -> int:
    """Something a graph mirrors changed: a layer's trainable flag or weights, a structure."""
    global _generation
    _generation += 1
    return _generation


def add_owner(layer, model) -> None:
    """Record that `model`'s graph holds `layer` (once per model)."""
    for ref in layer._owners:
        if ref() is model:
            return
    layer._owners.append(weakref.ref(model))


def owners(layer) -> list:
    """The live models whose graphs hold `layer`; references to freed models are dropped."""
    live = [m for m in (ref() for ref in layer._owners) if m is not None]
    if len(live) != len(layer._owners):
        layer._owners[:] = [ref for ref in layer._owners if ref() is not None]
    return live


def release(model) -> None:
    """A model is being freed: if its graph trained since the layers were last brought up
    to date, copy the weights back first (errors are dropped: this runs from __del__, maybe
    at interpreter exit)."""
    try:
        if model.__dict__.get("_graph_dirty") and model.__dict__.get("_graph") is not None:
            model._pull_weights()
    except Exception:
        pass
