"""The end every application builder shares: the model from its input tensor, Keras's layer
order, then the weights (None, "imagenet" from the checked catalogue, or a file)."""
from __future__ import annotations

import os

from catdog.applications.imagenet_utils import keras_layer_order
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
    """Model(img_input, x) in Keras's layer order, with its weights loaded: "imagenet" ->
    catdog.weights.fetch_named(imagenet_file) (local copy or checked download)."""
    model = Model(img_input, x, name=name)
    keras_layer_order(model)
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "imagenet":
        from catdog import weights as weights_mod

        path = weights_mod.fetch_named(imagenet_file)
    else:
        path = os.fspath(weights)
    model.load_weights(path)
    return model
