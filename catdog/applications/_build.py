"""The end every application builder shares: the model from its input tensor (Model lists
its layers in Keras's order), then the weights (None, "imagenet" from the checked catalogue,
or a file)."""
from __future__ import annotations

import os

from catdog.models import Input, KerasTensor, Model


def image_input(input_shape, input_tensor):
    """Keras's `img_input`: a new Input, or the caller's catdog Input tensor."""
    if input_tensor is None:
        return Input(shape=input_shape)
    if not isinstance(input_tensor, KerasTensor):
        raise TypeError("input_tensor must be a tensor made by catdog.Input(...) (catdog has no "
                        f"backend tensors), got {type(input_tensor).__name__}")
    if tuple(input_tensor.shape) != tuple(input_shape):
        raise ValueError(f"input_tensor has shape {input_tensor.shape}, input_shape says "
                         f"{tuple(input_shape)}")
    return input_tensor


def finish(img_input, x, name, weights, imagenet_file):
    """Model(img_input, x) with its weights loaded: "imagenet" ->
    catdog.weights.fetch_named(imagenet_file) (local copy or checked download)."""
    model = Model(img_input, x, name=name)
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "imagenet":
        from catdog import weights as weights_mod

        path = weights_mod.fetch_named(imagenet_file)
    else:
        path = os.fspath(weights)
    load_weights(model, path)
    return model


def load_weights(model, path):
    """model.load_weights(path), and the official files' Keras 1 weight names: VGG16's
    ImageNet files (2016) call a layer's weights `block1_conv1_W_1:0`, `block1_conv1_b_1:0`.
    Keras's legacy loader assigns a layer's weights by order (legacy_h5_format.py
    load_weights_from_hdf5_group), so names never mattered to it; here a layer whose file
    names are none of the model's takes them by order (count and shapes still checked)."""
    from catdog import checkpoint, h5io

    if h5io.is_keras3(path):
        return model.load_weights(path)
    stored = h5io.read_weights(path)
    expected = dict(checkpoint._expected(model))
    renamed, changed = type(stored)(), False
    for lname, items in stored.items():
        want = [n for n, _ in expected.get(lname, [])]
        names = [n for n, _ in items]
        if want and len(want) == len(items) and not set(names) & set(want):
            renamed[lname] = [(w, a) for w, (_, a) in zip(want, items)]
            changed = True
        else:
            renamed[lname] = items
    if not changed:
        return model.load_weights(path)
    model._sync()
    checkpoint._set_matched(model, h5io.check_weights(renamed, checkpoint._expected(model),
                                                      source=path, by_name=True))
