"""Model weights to and from files: Keras 3 ``.weights.h5``, Keras legacy .h5 (the ImageNet
downloads, Keras 2 save_weights, Keras 3's legacy h5 for nested models) and catdog's own
.npz (catdog/h5io.py has the formats). Every weight's shape is checked, and nothing is
changed unless the whole file fits.

Keras 3 ``.weights.h5`` addresses a layer by its place in the model, with class names
counted per container (keras/src/saving/saving_lib.py ``_save_container_state``): catdog
computes the same paths from its own model structure, so a catdog model built like the
Keras one (the lab: input, augmentation Sequential, the MobileNetV2 Functional, pooling,
dropout, Dense) reads and writes the file Keras does.

Legacy .h5 (keras/src/legacy/saving/legacy_h5_format.py): one group per *top-level* layer;
a nested model's group holds all its weights, named ``<inner layer>/<weight>``, in Keras's
legacy order (trainable weights first, then the others). Keras loads such a group by order
alone, so a Keras model must have the same trainable layers as the catdog model had when it
saved; catdog reads the names (and falls back to that order)."""
from __future__ import annotations

import re
from collections import OrderedDict

from catdog import h5io

KERAS3_SUFFIX = ".weights.h5"


def _expected(model):
    return [(l.name, [(n, w.shape) for n, w, _ in l._weights]) for l in model._leaf_layers()]


# ---- model structure as Keras sees it -----------------------------------------------------
def _to_snake_case(name):  # keras.src.utils.naming.to_snake_case
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _is_container(layer):
    from catdog.models import Model

    return isinstance(layer, Model)


def _keras_class(layer):
    from catdog.models import Sequential

    if getattr(layer, "keras_class", None):
        return layer.keras_class
    if isinstance(layer, Sequential):
        return "sequential"
    if _is_container(layer):
        return "functional"
    return _to_snake_case(type(layer).__name__)


def _children(model):
    """Keras's model.layers: a Functional model's include its InputLayer, a Sequential's not;
    a layer used twice counts once."""
    from catdog.layers.core import InputLayer
    from catdog.models import Sequential

    layers = model._stack if isinstance(model, Sequential) else model.layers
    out, seen = [], set()
    for layer in layers:
        if id(layer) in seen or (isinstance(model, Sequential) and isinstance(layer, InputLayer)):
            continue
        if getattr(layer, "_keras_op", None):  # a keras.ops call loaded from a .keras file:
            continue  # an operation in Keras's graph, not one of its layers
        seen.add(id(layer))
        out.append(layer)
    return out


def _keras3_entries(model):
    """[(path, layer)] for the model ("") and every layer below it, in model order."""
    entries, seen = [("", model)], {id(model)}

    def walk(m, prefix):
        used = {}
        for layer in _children(m):
            name = _keras_class(layer)
            if name in used:
                used[name] += 1
                name = f"{name}_{used[name]}"
            else:
                used[name] = 0
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            path = f"{prefix}layers/{name}"
            entries.append((path, layer))
            if _is_container(layer):
                walk(layer, path + "/")

    walk(model, "")
    return entries


def _legacy_order(sub):
    """A nested model's weights in Keras's legacy h5 order: [(leaf, weight name, array)],
    trainable ones (trainable layer, trainable weight) first, then the rest."""
    sub._sync()
    rows = [(leaf, tr and sub.trainable, n, w, t) for leaf, tr in sub._trainable_map()
            for n, w, t in leaf._weights]
    return ([(l, n, w) for l, tr, n, w, t in rows if tr and t]
            + [(l, n, w) for l, tr, n, w, t in rows if not (tr and t)])


def _legacy_top(model):
    """The legacy h5 mapping: top-level layer name -> [(weight name, array)]."""
    model._sync()
    out = OrderedDict()
    for layer in _children(model):
        if _is_container(layer):
            out[layer.name] = [(f"{leaf.name}/{n}", w) for leaf, n, w in _legacy_order(layer)]
        else:
            out[layer.name] = [(n, w) for n, w, _ in layer._weights]
    return out


def _keras3_depthwise_name(items, layer):
    """[(weight name, array)] with Keras 3's 'kernel' read as the layer's 'depthwise_kernel'."""
    names = [n for n, _, _ in layer._weights]
    return [("depthwise_kernel" if w == "kernel" and "kernel" not in names
             and "depthwise_kernel" in names else w, a) for w, a in items]


def _expand_nested(weights, model, source):
    """Legacy groups of nested models -> leaf layers: by the inner names when they are the
    model's leaf names (Keras 3 calls a depthwise kernel 'kernel'), else in the sub-model's
    legacy order."""
    leaves = {l.name: l for l in model._leaf_layers()}
    kids = _children(model)
    subs = {l.name: l for l in kids if _is_container(l)}
    # A rebuilt model's auto-named sub-models have other names: when the file lists as many
    # top-level layers as the model has, its groups map to them by position, as Keras does.
    if len(weights) == len(kids):
        for fname, kid in zip(weights, kids):
            if _is_container(kid):
                subs.setdefault(fname, kid)
    out = OrderedDict()
    for lname, items in weights.items():
        if lname in leaves:  # Keras 3's legacy h5 calls a top-level depthwise kernel 'kernel' too
            out[lname] = _keras3_depthwise_name(items, leaves[lname])
            continue
        if not items or not all("/" in n for n, _ in items):
            out[lname] = items
            continue
        groups = OrderedDict()
        for n, a in items:
            inner, w = n.rsplit("/", 1)
            groups.setdefault(inner, []).append((w, a))
        if all(i in leaves for i in groups):
            # the model's leaf order (the file's is trainable-first), for matching by position;
            # also when the group's own name differs (a rebuilt model's auto-named Sequential)
            groups = OrderedDict((i, groups[i]) for i in leaves if i in groups)
            for inner, ws in groups.items():
                out[inner] = _keras3_depthwise_name(ws, leaves[inner])
        elif lname in subs:
            order = _legacy_order(subs[lname])
            if len(order) != len(items):
                raise ValueError(f"{source}: layer {lname}: the model has {len(order)} weights, "
                                 f"the file {len(items)}")
            spread = {}
            for (leaf, n, _), (_, a) in zip(order, items):
                spread.setdefault(leaf.name, []).append((n, a))
            for leaf in subs[lname]._leaf_layers():
                if leaf.name in spread:
                    out[leaf.name] = spread[leaf.name]
        else:
            out[lname] = items
    return out


# ---- loading and saving -------------------------------------------------------------------
def _set_matched(model, matched):
    layers = {l.name: l for l in model._leaf_layers()}
    for name, items in matched.items():
        layers[name].set_weights([a for _, a in items])


def _load_keras3(model, path):
    store = h5io.read_keras3(path)
    by_name = {}
    for where, (name, arrays) in store.items():
        if name and arrays:
            by_name.setdefault(name, arrays)
    leaves = {id(l) for l in model._leaf_layers()}
    weights = OrderedDict()
    for where, layer in _keras3_entries(model):
        if id(layer) not in leaves or not layer._weights:
            continue
        if where in store and store[where][1]:
            arrays = store[where][1]
        elif layer.name in by_name:
            arrays = by_name[layer.name]
        else:
            raise ValueError(f"{path}: no weights for layer '{layer.name}' (Keras path "
                             f"'{where}'): the file was saved from a model of another structure")
        if len(arrays) != len(layer._weights):
            raise ValueError(f"{path}: layer '{layer.name}' ('{where}'): the model has "
                             f"{len(layer._weights)} weights, the file {len(arrays)}")
        weights[layer.name] = [(n, a) for (n, _, _), a in zip(layer._weights, arrays)]
    used = sum(len(v) for v in weights.values())
    stored = sum(len(a) for _, a in store.values())
    if used != stored:
        raise ValueError(f"{path}: the file has {stored} weight arrays, the model {used}")
    return h5io.check_weights(weights, _expected(model), source=path, by_name=True)


def load_weights(model, path, by_name=None):
    """Load `path` into `model`. Keras 3 .weights.h5: by the layers' places in the model (as
    Keras). Legacy h5 and .npz: layers matched by name when every name matches (the ImageNet
    files), else by position, as Keras's load_weights does for h5 files (a rebuilt model whose
    auto-named layers got other numbers); nested models' groups are spread over their layers.
    Shapes are always checked. Raises FileNotFoundError / ValueError naming the file and the
    first missing, extra or mis-shaped layer or weight; the model is untouched on error."""
    model._sync()
    if h5io.is_keras3(path):
        _set_matched(model, _load_keras3(model, path))
        return
    weights = _expand_nested(h5io.read_weights(path), model, path)
    expected = _expected(model)
    if by_name is None:
        have = {n for n, ws in weights.items() if len(ws)}
        want = {n for n, ws in expected if len(ws)}
        by_name = have == want or len(have) != len(want)
    _set_matched(model, h5io.check_weights(weights, expected, source=path, by_name=by_name))


def save_weights(model, path, format=None):
    """Write atomically (temp file + rename): `*.weights.h5` -> Keras 3's layout; other
    .h5/.hdf5 -> Keras legacy layout (a group per top-level layer, nested models as Keras
    nests them); anything else -> catdog's .npz."""
    model._sync()
    if format in (None, "keras3") and str(path).lower().endswith(KERAS3_SUFFIX) or format == "keras3":
        entries = [(where, layer.name,
                    [w for _, w, _ in layer._weights] if not _is_container(layer) else [])
                   for where, layer in _keras3_entries(model)]
        return h5io.write_keras3(path, entries)
    fmt = format or ("keras" if str(path).lower().endswith((".h5", ".hdf5")) else "catdog")
    if fmt in ("keras", "h5"):
        return h5io.write_keras_h5(path, _legacy_top(model))
    weights = OrderedDict((l.name, [(n, w) for n, w, _ in l._weights]) for l in model._leaf_layers())
    return h5io.write_weights(path, weights, format=fmt, metadata={"model": model.name})
