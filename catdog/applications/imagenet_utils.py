"""What Keras's application builders share (keras/src/applications/imagenet_utils.py): the
input-shape rules and their errors, correct_pad, "caffe" preprocessing and decode_predictions.
Keras's layer order (`model.layers`, map_graph's depth order, which differs from execution
order for ResNet's shortcuts) is catdog.models.keras_layer_order, used by every Model.
"""
from __future__ import annotations

import json
import os
import warnings
from typing import List

import numpy as np

# keras/src/applications/imagenet_utils.py
CLASS_INDEX_PATH = ("https://storage.googleapis.com/download.tensorflow.org/"
                    "data/imagenet_class_index.json")
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_CLASS_INDEX = None


# --------------------------------------------------------------------------- arguments

def check_weights_arg(weights, include_top, classes):
    """Keras's first two checks, in its words: weights None / "imagenet" / an existing file,
    and 1000 classes for the ImageNet top."""
    if not (weights is None or (isinstance(weights, str) and weights == "imagenet")
            or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError("The `weights` argument should be either `None` (random "
                         "initialization), 'imagenet' (pre-training on ImageNet), or the path "
                         f"to the weights file to be loaded.  Received: weights={weights}")
    if isinstance(weights, str) and weights == "imagenet" and include_top and classes != 1000:
        raise ValueError("If using `weights='imagenet'` with `include_top=True`, `classes` "
                         f"should be 1000.  Received classes={classes}")
    if include_top and int(classes) < 1:
        raise ValueError(f"classes must be >= 1, got {classes}")


def check_pooling(pooling):
    """Keras ignores an unknown pooling silently; catdog says so instead of guessing."""
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")


def obtain_input_shape(input_shape, default_size, min_size, require_flatten, weights=None):
    """Keras's obtain_input_shape (keras/src/applications/imagenet_utils.py, channels_last),
    same rules and messages: no input_shape and no top gives (None, None, 3), a free input
    size (the model plans a graph per image size it meets)."""
    weights = "imagenet" if isinstance(weights, str) and weights == "imagenet" else weights
    if input_shape is not None:
        try:
            input_shape = tuple(None if d is None else int(d) for d in input_shape)
        except TypeError:
            raise ValueError("`input_shape` must be a tuple of three integers.") from None
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        if input_shape[-1] not in {1, 3}:
            warnings.warn("This model usually expects 1 or 3 input channels. However, it was "
                          f"passed an input_shape with {input_shape[-1]} input channels.",
                          stacklevel=3)
        default_shape = (default_size, default_size, input_shape[-1])
    else:
        default_shape = (default_size, default_size, 3)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError("When setting `include_top=True` and loading `imagenet` weights, "
                             f"`input_shape` should be {default_shape}.  Received: "
                             f"input_shape={input_shape}")
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError("`input_shape` must be a tuple of three integers.")
        if input_shape[-1] != 3 and weights == "imagenet":
            raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
        if ((input_shape[0] is not None and input_shape[0] < min_size)
                or (input_shape[1] is not None and input_shape[1] < min_size)):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: "
                             f"input_shape={input_shape}")
    else:
        input_shape = default_shape if require_flatten else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError("If `include_top` is True, you should specify a static "
                         f"`input_shape`. Received: input_shape={input_shape}")
    return input_shape


def validate_activation(classifier_activation, weights):
    """Only None or softmax on the ImageNet top (Keras's rule, applied when weights is not
    None)."""
    if weights is None:
        return
    name = getattr(classifier_activation, "__name__", classifier_activation)
    if name not in (None, "softmax", "linear"):
        raise ValueError("Only `None` and `softmax` activations are allowed for the "
                         "`classifier_activation` argument when using pretrained weights, with "
                         f"`include_top=True`; Received: classifier_activation={classifier_activation}")


def correct_pad(shape, kernel_size):
    """((top, bottom), (left, right)) zero padding before a stride-2 "valid" convolution, from
    the input's (H, W, C) shape."""
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if shape[0] is None else (1 - shape[0] % 2, 1 - shape[1] % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


# --------------------------------------------------------------------------- layer order

def keras_layer_order(model) -> List:
    """`model.layers` in Keras 3's order (catdog.models.keras_layer_order, which Model uses
    itself): kept so that a model whose structure changed gets it again."""
    from catdog.models import keras_layer_order as order

    model.layers = order(model._nodes[-1])
    return model.layers


# --------------------------------------------------------------------------- preprocessing

def preprocess_caffe(x):
    """Keras's "caffe" mode: RGB -> BGR, then minus the ImageNet BGR mean, no scaling. On
    arrays float32 out (a float input array is changed in place, as Keras does); on a model
    tensor the operations Keras's _preprocess_tensor_input records (a GetItem per channel, a
    Stack, an Add of the mean tensor), which the engine runs as per-channel maps."""
    from catdog.models import KerasTensor

    if isinstance(x, KerasTensor):  # keras/src/applications/imagenet_utils.py, channels_last
        from catdog import ops

        if x.shape[-1] != 3:
            raise ValueError(f"preprocess_input: expected 3 colour channels last, got shape "
                             f"{x.shape}")
        x = ops.stack([x[..., i] for i in (2, 1, 0)], axis=-1)  # 'RGB'->'BGR'
        mean_tensor = (-np.array(CAFFE_MEAN_BGR)).astype(np.float32).reshape((1, 1, 1, 3))
        x += mean_tensor  # zero-center by mean pixel
        return x
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if x.shape[-1] != 3:
        raise ValueError(f"preprocess_input: expected 3 colour channels last, got shape {x.shape}")
    x = x[..., ::-1]
    x[..., 0] -= CAFFE_MEAN_BGR[0]
    x[..., 1] -= CAFFE_MEAN_BGR[1]
    x[..., 2] -= CAFFE_MEAN_BGR[2]
    return x


def _class_index(cache_dir=None, urls=None, progress=True):
    global _CLASS_INDEX
    if _CLASS_INDEX is None or urls is not None:
        from catdog import weights as weights_mod

        path = weights_mod.fetch_named("imagenet_class_index.json", cache=cache_dir,
                                       base_urls=urls, progress=progress)
        with open(path) as f:
            index = json.load(f)
        if urls is not None:
            return index
        _CLASS_INDEX = index
    return _CLASS_INDEX


def decode_predictions(preds, top=5, *, cache_dir=None, urls=None, progress=True):
    """Keras's decode_predictions: per sample the `top` (class id, name, score) tuples, best
    first. The class index is Keras's imagenet_class_index.json (downloaded once into the
    cache, checked against Keras's md5; or put it in $CATDOG_WEIGHTS_DIR)."""
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError("`decode_predictions` expects a batch of predictions (i.e. a 2D array "
                         f"of shape (samples, 1000)). Received array with shape: {preds.shape}")
    index = _class_index(cache_dir, urls, progress)
    results = []
    for pred in preds:
        top_indices = pred.argsort()[-top:][::-1]
        result = [tuple(index[str(i)]) + (pred[i],) for i in top_indices]
        result.sort(key=lambda r: r[2], reverse=True)
        results.append(result)
    return results


def identity_preprocess(x, data_format=None):
    """Keras's placeholder: the model holds its own preprocessing (Rescaling); x unchanged."""
    return x


__all__ = ["obtain_input_shape", "correct_pad", "keras_layer_order", "decode_predictions",
           "preprocess_caffe", "validate_activation", "check_weights_arg", "check_pooling",
           "identity_preprocess", "CLASS_INDEX_PATH", "CLASS_INDEX_MD5"]

