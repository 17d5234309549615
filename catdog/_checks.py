"""Argument checks for fit / evaluate / predict, run before anything trains, so bad input
gets a ValueError naming the argument and what it accepts, and the model loses nothing.

Where Keras says nothing: labels a loss cannot mean (BinaryCrossentropy on -5 or 7, a
three-class folder with label_mode="int" into a one-unit head) train silently in Keras;
catdog refuses them, naming the values (and, for a dataset, its class count and label_mode).
docs/bad_input.md lists what each bad input gets."""
from __future__ import annotations

import numbers

import numpy as np

# Smallest spatial size a model with None (any) spatial dims accepts here. As in Keras there is
# no bound of its own: a size too small for some layer is refused when that size's graph is
# made, naming the layer ("layer 'conv': input 3x3 too small for kernel 5x5").
MIN_FREE_SIZE = 1



def _call(where: str) -> str:
    """'fit' -> 'fit()'; 'fit(validation_data=...)' stays."""
    return where if where.endswith(")") else where + "()"


def batch_size(value, where: str, default: int = 32) -> int:
    """batch_size: an integer >= 1 (None: Keras's default 32)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}(batch_size={value!r}): batch_size must be an integer >= 1 "
                         "(images per step), or None for 32")
    return int(value)


def data_given(x, where: str) -> None:
    if x is None:
        raise ValueError(f"{where}(x=None): x must be the images: a dataset (e.g. from "
                         "catdog.utils.image_dataset_from_directory), a NumPy array (n, H, W, 3) "
                         "with labels y, or an iterable of (images, labels) batches")


def _model_shape(model, attr: str):
    """model.input_shape / output_shape; a Sequential not yet called knows them only through
    the model it builds from its layers."""
    shape = getattr(model, attr, None)
    if shape is None and hasattr(model, "_as_model"):
        shape = getattr(model._as_model(), attr)
    return tuple(shape)


def _fits(expected, got) -> bool:
    if len(expected) != len(got):
        return False
    for e, g in zip(expected, got):
        if e is None:
            if g is None or g < MIN_FREE_SIZE:
                return False
        elif e != g:
            return False
    return True


def _shape(shape) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"


def input_shape(model, got, what: str = "") -> None:
    """Per-image shape `got` (H, W, C) must be the model's input shape; a None dim of the
    model takes any size >= MIN_FREE_SIZE. `what` says where `got` comes from."""
    expected = _model_shape(model, "input_shape")
    if _fits(expected, tuple(got)):
        return
    free = (f"; its None dims take any size >= {MIN_FREE_SIZE}"
            if any(e is None for e in expected) else "")
    raise ValueError(f"model '{model.name}' expects inputs of shape (batch, "
                     f"{', '.join('None' if s is None else str(s) for s in expected)}), got "
                     f"{what or 'images'} of shape {_shape(got)}{free}")


def dataset_images(model, data, where: str) -> None:
    """A catdog dataset's images (image_size + 3 channels) must fit the model's input."""
    size = getattr(data, "image_size", None)
    if size is None or not hasattr(data, "epoch_batches"):
        return
    input_shape(model, tuple(size) + (3,), f"in {_call(where)} a dataset made with image_size="
                f"{tuple(size)}: images")


def array_images(model, x, where: str) -> None:
    shape = np.shape(x)
    if len(shape) == len(_model_shape(model, "input_shape")) + 1:
        input_shape(model, shape[1:], f"in {_call(where)} an array {tuple(shape)}: images")


def _loss_and_units(model):
    c = getattr(model, "_compiled", None)
    if c is None:
        return None, None
    shape = _model_shape(model, "output_shape")
    return c.loss.family, (int(shape[-1]) if shape else None)


def _values(v) -> str:
    v = np.unique(v)
    shown = ", ".join(f"{float(a):g}" for a in v[:8])
    return shown + (f", ... ({len(v)} distinct)" if len(v) > 8 else "")


def labels(model, y, where: str, dataset=None) -> None:
    """Labels the compiled loss can mean: BinaryCrossentropy 0..1 (classes 0/1 or soft
    targets), SparseCategoricalCrossentropy integer class indices in [0, units).
    (CategoricalCrossentropy's one-hot shape is checked where labels are converted.)"""
    family, units = _loss_and_units(model)
    if family is None:
        return
    y = np.asarray(y)
    if y.size == 0 or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        return  # emptiness and dtype have their own messages
    y = y.astype(np.float64).reshape(-1)
    bad_finite = ~np.isfinite(y)
    if bad_finite.any():
        raise ValueError(f"{_call(where)}: labels contain NaN or Inf ({int(bad_finite.sum())} of "
                         f"{y.size})")
    if family == "binary":
        bad = y[(y < 0) | (y > 1)]
        rule = "BinaryCrossentropy needs labels in [0, 1] (classes 0/1, or probabilities)"
        hint = ("; for more than two classes use Dense(classes) with "
                "SparseCategoricalCrossentropy(from_logits=True)")
    elif family == "sparse" and units:
        bad = y[(y < 0) | (y >= units) | (y != np.floor(y))]
        rule = (f"SparseCategoricalCrossentropy needs integer class indices in [0, {units}) "
                f"(the model's {units} output units)")
        hint = ""
    else:
        return
    if not len(bad):
        return
    what = f"{len(bad)} of {y.size} labels"
    if dataset is not None:
        names = getattr(dataset, "class_names", None) or []
        what += (f"; the dataset has {len(names)} classes ({', '.join(map(str, names[:5]))}"
                 f"{', ...' if len(names) > 5 else ''}) and label_mode={dataset.label_mode!r}")
    raise ValueError(f"{_call(where)}: {rule}; got {_values(bad)} ({what}){hint}")


def dataset_labels(model, data, where: str) -> None:
    """All of a catdog dataset's labels, before its first batch trains."""
    if not hasattr(data, "epoch_batches") or getattr(data, "label_mode", None) is None:
        return
    y = data.labels
    if y is not None:
        labels(model, y, where, dataset=data)


def empty_output(model) -> np.ndarray:
    """What predict returns for no images: (0, *output shape), as Keras."""
    return np.zeros((0,) + _model_shape(model, "output_shape"), np.float32)


def data(model, x, y, where: str) -> None:
    """The images and labels of fit / evaluate, checked whole before the first batch runs
    (an iterable of batches is checked batch by batch as it comes)."""
    data_given(x, where)
    if y is not None or isinstance(x, np.ndarray):
        array_images(model, x, where)
        if y is not None:
            labels(model, y, where)
    else:
        dataset_images(model, x, where)
        dataset_labels(model, x, where)
