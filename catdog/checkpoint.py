"""Model weights to and from files: Keras legacy .h5 (the ImageNet downloads, Keras
save_weights) and catdog's own .npz (catdog/h5io.py has the formats). Layers are matched by
name, every weight's shape is checked, and nothing is changed unless the whole file fits."""
from __future__ import annotations

from collections import OrderedDict

from catdog import h5io


def _expected(model):
    return [(l.name, [(n, w.shape) for n, w, _ in l._weights]) for l in model._leaf_layers()]


def load_weights(model, path, by_name=None):
    """Load `path` into `model`. Layers are matched by name when every name matches (the
    ImageNet files), else by position, as Keras's load_weights does for h5 files (a rebuilt
    model whose auto-named layers got other numbers); shapes are always checked. Raises
    FileNotFoundError / ValueError naming the file and the first missing, extra or mis-shaped
    layer or weight; the model is untouched on error."""
    weights = h5io.read_weights(path)
    expected = _expected(model)
    if by_name is None:
        have = {n for n, ws in weights.items() if len(ws)}
        want = {n for n, ws in expected if len(ws)}
        by_name = have == want or len(have) != len(want)
    matched = h5io.check_weights(weights, expected, source=path, by_name=by_name)
    layers = {l.name: l for l in model._leaf_layers()}
    for name, items in matched.items():
        layers[name].set_weights([a for _, a in items])


def save_weights(model, path, format=None):
    """Write atomically (temp file + rename): .h5/.hdf5 -> Keras legacy layout (leaf layers
    by name), anything else -> catdog's .npz."""
    model._sync()
    weights = OrderedDict((l.name, [(n, w) for n, w, _ in l._weights]) for l in model._leaf_layers())
    return h5io.write_weights(path, weights, format=format,
                              metadata={"model": model.name} if format != "keras" else None)
