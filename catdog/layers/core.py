"""Keras-style layers the C engine runs. Each layer knows its Keras name, its weights (NumPy
arrays in Keras shapes, the master copy while no model is running) and how to add itself to
an engine graph. Shapes exclude the batch axis: (H, W, C) or (C,)."""
from __future__ import annotations

import functools
import itertools
import warnings
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from catdog import _engine, _lifetime
from catdog.activations import name_and_code as activation_name

_counters: dict = {}


def _auto_name(base: str) -> str:
    n = _counters.get(base, 0)
    _counters[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out).replace("2_d", "2d")


def _accepting_batch_dim(build):
    """Wraps a layer's build(input_shape) so that it takes Keras's form too.

    Inside catdog, shapes are per sample: (160, 160, 3), (1280,), (None, None, 3) for free
    spatial dims. Keras's public `layer.build(input_shape)` puts the batch first, as None:
    (None, 1280). Called from outside, a leading None is therefore the batch and is dropped;
    catdog's own calls (and the `super().build` calls inside a build) pass per-sample shapes
    and go through `_build_per_sample`, which strips nothing."""
    @functools.wraps(build)
    def wrapped(self, input_shape):
        shape = tuple(input_shape)
        if self.__dict__.get("_in_build"):
            return build(self, shape)
        if len(shape) >= 2 and shape[0] is None:
            shape = shape[1:]
        return self._build_per_sample(shape, build)

    return wrapped


def _accepting_input_shape(init):
    """Keras 3's input_shape= / input_dim= on any layer (keras/src/layers/layer.py): kept as
    _input_shape_arg, from which a Sequential makes its input when the layer comes first,
    with Keras's warning."""
    @functools.wraps(init)
    def wrapped(self, *args, input_shape=None, input_dim=None, **kwargs):
        init(self, *args, **kwargs)
        shape = (input_dim,) if input_dim is not None else input_shape
        if shape is not None and "_input_shape_arg" not in self.__dict__:
            warnings.warn("Do not pass an `input_shape`/`input_dim` argument to a layer. When "
                          "using Sequential models, prefer using an `Input(shape)` object as the "
                          "first layer in the model instead.", UserWarning, stacklevel=2)
            self._input_shape_arg = tuple(shape)

    return wrapped


class GraphNodes(NamedTuple):
    """What add_to_graph returns when a layer becomes several engine nodes: the node its
    output comes from, the node holding its weights (a plain int: one node, both), and, when
    its weights live on several nodes, the explicit weight map: (node, engine weight index)
    for each of the layer's weights, in Keras's order."""
    output: int
    weights: int
    weight_map: Optional[List[Tuple[int, int]]] = None


class Layer:
    """Base class: name, trainable flag, weights, call on symbolic tensors."""

    engine_kind: Optional[str] = None  # graph builder name; None: not runnable by the engine

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            cls.build = _accepting_batch_dim(cls.__dict__["build"])
        if "__init__" in cls.__dict__:
            cls.__init__ = _accepting_input_shape(cls.__dict__["__init__"])

    def __init__(self, name: Optional[str] = None, trainable: bool = True):
        self.name = name or _auto_name(_snake(type(self).__name__))
        self._trainable = bool(trainable)
        self._weights: List[Tuple[str, np.ndarray, bool]] = []  # (name, value, can_train)
        self.input_shape: Optional[tuple] = None
        self.output_shape: Optional[tuple] = None
        self._version = 0  # bumped when weights change in Python
        self._owners: list = []  # weak references to the models whose graphs hold it

    # -- trainable ------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        _lifetime.changed()

    def _build_per_sample(self, shape: tuple, build=None) -> None:
        self._in_build = True
        try:
            (build or type(self).build)(self, tuple(shape))
        finally:
            self._in_build = False

    # -- weights -----------------------------------------------------------------------------
    def build(self, input_shape: tuple) -> None:
        self._set_geometry(input_shape)

    def _set_geometry(self, input_shape: tuple) -> None:
        """input_shape, output_shape and whatever else follows the spatial size (a "same"
        padding) for the per-sample `input_shape`. build() calls it once; a model with a free
        input size (None dims) calls it again with each concrete size it plans, and restores
        the free geometry afterwards (models.Model._build_graph)."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def _add_weight(self, name: str, shape: tuple, value: float = 0.0, can_train: bool = True):
        self._weights.append((name, np.full(shape, value, np.float32), can_train))

    def _add_glorot(self, name: str, shape: tuple) -> None:
        """Keras glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)), fans from the
        shape (receptive field = all dims but the last two), seeded by catdog.random."""
        from catdog import random as _random

        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        value = _random.layer_rng(self.name).uniform(-limit, limit, shape).astype(np.float32)
        self._weights.append((name, value, True))

    def _sync_from_owners(self) -> None:
        from catdog._lifetime import owners

        for owner in owners(self):
            owner._pull_layer(self)

    @property
    def weights(self) -> List[np.ndarray]:
        self._sync_from_owners()
        return [w for _, w, _ in self._weights]

    @property
    def weight_names(self) -> List[str]:
        return [f"{self.name}/{n}" for n, _, _ in self._weights]

    @property
    def trainable_weights(self) -> List[np.ndarray]:
        self._sync_from_owners()
        if not self.trainable:
            return []
        return [w for _, w, t in self._weights if t]

    @property
    def non_trainable_weights(self) -> List[np.ndarray]:
        self._sync_from_owners()
        if not self.trainable:
            return [w for _, w, _ in self._weights]
        return [w for _, w, t in self._weights if not t]

    # Keras 3 names the weights "variables"; the tutorial counts len(model.trainable_variables)
    @property
    def variables(self) -> List[np.ndarray]:
        return self.weights

    @property
    def trainable_variables(self) -> List[np.ndarray]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> List[np.ndarray]:
        return self.non_trainable_weights

    def get_weights(self) -> List[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self._sync_from_owners()  # a pending pull must not overwrite what is set now
        if len(weights) != len(self._weights):
            raise ValueError(f"layer '{self.name}' expects {len(self._weights)} weights "
                             f"({', '.join(n for n, _, _ in self._weights) or 'none'}), "
                             f"got {len(weights)}")
        new = []
        for (name, old, t), w in zip(self._weights, weights):
            arr = np.asarray(w)
            if arr.shape != old.shape:
                raise ValueError(f"layer '{self.name}' weight '{name}' has shape {old.shape}, "
                                 f"got {arr.shape}")
            if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"layer '{self.name}' weight '{name}': dtype {arr.dtype} is not numeric")
            arr = arr.astype(np.float32)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"layer '{self.name}' weight '{name}' has NaN or Inf values")
            new.append((name, np.require(arr, requirements="C"), t))
        self._weights = new
        self._version += 1
        _lifetime.changed()

    def count_params(self) -> int:
        return int(sum(w.size for _, w, _ in self._weights))

    # -- Keras configs (catdog/saving/serialization.py holds each class's) -------------------
    def get_config(self) -> dict:
        from catdog.saving import serialization

        return serialization.layer_config(self)["config"]

    @classmethod
    def from_config(cls, config: dict):
        from catdog.saving import serialization

        return serialization.layer_from_class(cls, config)

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, inputs, training=None):
        from catdog.models import KerasTensor  # late import: models builds on layers

        if isinstance(inputs, (list, tuple)):
            if not all(isinstance(t, KerasTensor) for t in inputs):
                raise TypeError(f"layer '{self.name}': call it on catdog.Input tensors")
            shapes = [t.shape for t in inputs]
            self._check_inputs(shapes)
            if self.input_shape is None:
                self._build_per_sample(shapes[0])
            return KerasTensor(self.output_shape, self, list(inputs), training)
        if not isinstance(inputs, KerasTensor):
            return self._call_eager(inputs, training)
        if self.input_shape is None:
            self._build_per_sample(inputs.shape)
        elif tuple(inputs.shape) != tuple(self.input_shape):
            raise ValueError(f"layer '{self.name}' was built for input shape {self.input_shape}, "
                             f"called on {inputs.shape}")
        return KerasTensor(self.output_shape, self, [inputs], training)

    def _call_eager(self, x, training=None):
        """layer(x) on an array (n, *shape) -> array, as Keras 3 runs a layer called directly:
        it runs in a one-layer model on the engine (built for x's shape on first use, then
        kept), with this layer's own weights; training=None is inference (Dropout passes
        through, BatchNormalization uses its moving statistics). The layer is built by the
        call, so the same object then builds a Model with the weights it just used."""
        from catdog.models import Input, Model  # late import: models builds on layers

        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"layer '{self.name}' called on an array of shape {x.shape}: "
                             "expected a batch (n, ...)")
        shape = tuple(x.shape[1:])
        eager = self.__dict__.setdefault("_eager_models", {})
        if shape not in eager:
            inp = Input(shape, name=f"{self.name}_eager_input")
            eager[shape] = Model(inp, self(inp), name=f"{self.name}_eager")
        return eager[shape]._call_eager(x, training)

    def _check_inputs(self, shapes):
        raise ValueError(f"layer '{self.name}' takes one input, got {len(shapes)}")

    # -- engine ----------------------------------------------------------------------------
    def add_to_graph(self, graph, input_ids: List[int]) -> int:
        raise NotImplementedError(
            f"layer '{self.name}' ({type(self).__name__}) cannot run on the catdog engine")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def with_activation(graph, layer, node: int):
    """A layer's activation= as an Activation node after its own: the layer's weights stay on
    `node` (GraphNodes.weights), its output is the activation's."""
    if layer._activation == _engine.ACTIVATION_LINEAR:
        return node
    out = graph.add_layer("Activation", layer.name + "/activation", (node,),
                          function=layer._activation)
    return GraphNodes(out, node)


def same_padding(size: Optional[int], kernel: int, stride: int) -> tuple:
    """TF "same": out = ceil(size / stride); the extra pixel goes after (bottom/right). A free
    (None) size has no padding yet: the engine refuses such a model when its graph is made."""
    if size is None:
        return None, None
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pads(padding: str, shape, kernel, strides):
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        t, b = same_padding(shape[0], kernel[0], strides[0])
        l, r = same_padding(shape[1], kernel[1], strides[1])
        return (t, b, l, r)
    raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")


def _pair(v) -> Tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    if len(v) != 2:
        raise ValueError(f"expected an int or a pair, got {v}")
    return v


Layer.build = _accepting_batch_dim(Layer.build)


def _conv_out(size, pad_a, pad_b, k, s):
    """Output size along one axis; None (a free input size) stays None."""
    return None if size is None else (size + pad_a + pad_b - k) // s + 1


class InputLayer(Layer):
    def __init__(self, shape, name=None):
        super().__init__(name=name or _auto_name("input_layer"))
        self._build_per_sample(tuple(shape))

    def add_to_graph(self, graph, input_ids):
        """An image input (H, W, C) is the engine's input node. A vector input (C,) (a head
        trained on features, a Dense layer called on an array) is fed as (1, 1, C) images
        and averaged over that 1x1 grid: the engine's (n, C) tensor, values unchanged."""
        if len(self.output_shape) == 1:
            image = graph.add_layer("InputLayer", self.name + "_as_1x1", (),
                                    shape=(1, 1, self.output_shape[0]))
            return graph.add_layer("GlobalAveragePooling2D", self.name, (image,))
        if None in self.output_shape:  # the model plans a graph per concrete size
            raise RuntimeError(f"input '{self.name}' has shape {self.output_shape}: its graph "
                               "is made for a concrete size (Model._build_graph)")
        if len(self.output_shape) != 3:
            raise ValueError(f"input '{self.name}': catdog models take (H, W, C) images or (C,) "
                             f"vectors, got shape {self.output_shape}")
        h, w, c = self.output_shape
        return graph.add_layer("InputLayer", self.name, (), shape=(h, w, c))


def _conv_geometry(layer, kernel_size, strides, dilation_rate, data_format):
    """Keras's checks (keras/src/layers/convolutional/base_conv.py) of the shared conv
    arguments; sets kernel_size, strides, dilation_rate, and span: the dilated kernel's extent
    (k - 1) * d + 1, which padding and the output size follow."""
    cls = type(layer).__name__
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{cls} '{layer.name}': catdog runs channels_last only")
    layer.kernel_size, layer.strides = _pair(kernel_size), _pair(strides)
    layer.dilation_rate = _pair(dilation_rate)
    if not all(layer.kernel_size):
        raise ValueError(f"{cls} '{layer.name}': The argument `kernel_size` cannot contain 0. "
                         f"Received kernel_size={layer.kernel_size}.")
    if not all(layer.strides):
        raise ValueError(f"{cls} '{layer.name}': The argument `strides` cannot contains 0. "
                         f"Received strides={layer.strides}")
    if min(layer.dilation_rate) < 1:
        raise ValueError(f"{cls} '{layer.name}': dilation_rate must be positive, got "
                         f"{layer.dilation_rate}")
    if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
        raise ValueError(f"{cls} '{layer.name}': `strides > 1` not supported in conjunction with "
                         f"`dilation_rate > 1`. Received: strides={layer.strides} and "
                         f"dilation_rate={layer.dilation_rate}")
    layer.span = tuple((k - 1) * d + 1 for k, d in zip(layer.kernel_size, layer.dilation_rate))


class Conv2D(Layer):
    """Keras's Conv2D, its arguments in Keras's order: dilation_rate (no strides > 1 with it,
    as Keras) and groups (dividing filters and input channels; the kernel is
    (kh, kw, in / groups, filters))."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True, *, name=None,
                 trainable=True):
        super().__init__(name=name, trainable=trainable)
        self.activation, self._activation = activation_name(activation, self.name)
        self.filters = int(filters)
        self.padding, self.use_bias, self.groups = padding, bool(use_bias), int(groups)
        _conv_geometry(self, kernel_size, strides, dilation_rate, data_format)
        if self.filters < 0 or (self.filters == 0 and type(self) is Conv2D):
            raise ValueError(f"Conv2D '{self.name}': Invalid value for argument `filters`. "
                             f"Expected a strictly positive value. Received filters={filters}.")
        if self.groups <= 0:
            raise ValueError(f"Conv2D '{self.name}': The number of groups must be a positive "
                             f"integer. Received: groups={groups}.")
        if self.filters % self.groups:
            raise ValueError(f"Conv2D '{self.name}': The number of filters must be evenly "
                             f"divisible by the number of groups. Received: groups={groups}, "
                             f"filters={filters}.")

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Conv2D '{self.name}' needs (H, W, C) inputs, got {input_shape}")
        if input_shape[2] % self.groups:
            raise ValueError(f"Conv2D '{self.name}': The number of input channels must be evenly "
                             f"divisible by the number of groups. Received groups={self.groups}, "
                             f"but the input has {input_shape[2]} channels")
        super().build(input_shape)
        self._add_glorot("kernel", (*self.kernel_size, input_shape[2] // self.groups,
                                    self.filters))
        if self.use_bias:
            self._add_weight("bias", (self.filters,))

    def _set_geometry(self, input_shape):
        self.pads = _pads(self.padding, input_shape, self.span, self.strides)
        Layer._set_geometry(self, input_shape)

    def compute_output_shape(self, s):
        t, b, l, r = self.pads
        return (_conv_out(s[0], t, b, self.span[0], self.strides[0]),
                _conv_out(s[1], l, r, self.span[1], self.strides[1]), self.filters)

    def add_to_graph(self, graph, ids):
        conv = graph.add_layer("Conv2D", self.name, ids, filters=self.filters,
                               kernel=self.kernel_size, strides=self.strides, pad=self.pads,
                               use_bias=self.use_bias, dilation=self.dilation_rate,
                               groups=self.groups)
        return with_activation(graph, self, conv)


class DepthwiseConv2D(Conv2D):
    """Keras's DepthwiseConv2D (any kernel size, strides, padding, depth_multiplier m,
    dilation_rate, use_bias, activation): kernel (kh, kw, c, m), c * m outputs, output
    channel k * m + j from input channel k (tf.nn.depthwise_conv2d)."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True, *,
                 name=None, trainable=True):
        super().__init__(0, kernel_size, strides, padding, data_format, dilation_rate, 1,
                         activation, use_bias, name=name, trainable=trainable)
        if isinstance(depth_multiplier, bool) or int(depth_multiplier) != depth_multiplier \
                or depth_multiplier <= 0:
            raise ValueError(f"DepthwiseConv2D '{self.name}': Invalid value for argument "
                             "`depth_multiplier`. Expected a strictly positive value. Received "
                             f"depth_multiplier={depth_multiplier}.")
        self.depth_multiplier = int(depth_multiplier)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"DepthwiseConv2D '{self.name}' needs (H, W, C) inputs")
        self.filters = input_shape[2] * self.depth_multiplier
        Layer.build(self, input_shape)
        self._add_glorot("depthwise_kernel", (*self.kernel_size, input_shape[2],
                                              self.depth_multiplier))
        if self.use_bias:
            self._add_weight("bias", (self.filters,))

    def add_to_graph(self, graph, ids):
        conv = graph.add_layer("DepthwiseConv2D", self.name, ids, kernel=self.kernel_size,
                               strides=self.strides, pad=self.pads, use_bias=self.use_bias,
                               dilation=self.dilation_rate, multiplier=self.depth_multiplier)
        return with_activation(graph, self, conv)


class SeparableConv2D(Layer):
    """Keras's SeparableConv2D: a depthwise conv (its kernel_size, strides, padding) then a 1x1
    conv to `filters` (with the bias), then the activation: engine nodes DepthwiseConv2D and
    Conv2D, the layer's weights (depthwise_kernel, pointwise_kernel, bias) mapped onto them."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True, *,
                 name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        if isinstance(depth_multiplier, bool) or int(depth_multiplier) != depth_multiplier \
                or depth_multiplier <= 0:
            raise ValueError(f"SeparableConv2D '{self.name}': depth_multiplier must be a "
                             f"positive integer, got {depth_multiplier}")
        self.depth_multiplier = int(depth_multiplier)
        self.activation, self._activation = activation_name(activation, self.name)
        self.filters = int(filters)
        _conv_geometry(self, kernel_size, strides, dilation_rate, data_format)
        self.padding, self.use_bias = padding, bool(use_bias)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"SeparableConv2D '{self.name}' needs (H, W, C) inputs")
        Layer.build(self, input_shape)
        c, m = input_shape[2], self.depth_multiplier
        self._add_glorot("depthwise_kernel", (*self.kernel_size, c, m))
        self._add_glorot("pointwise_kernel", (1, 1, c * m, self.filters))
        if self.use_bias:
            self._add_weight("bias", (self.filters,))

    _set_geometry = Conv2D._set_geometry  # the depthwise conv's padding, size and filters
    compute_output_shape = Conv2D.compute_output_shape

    def add_to_graph(self, graph, ids):
        dw = graph.add_layer("DepthwiseConv2D", self.name + "/depthwise", ids,
                             kernel=self.kernel_size, strides=self.strides, pad=self.pads,
                             use_bias=False, dilation=self.dilation_rate,
                             multiplier=self.depth_multiplier)
        pw = graph.add_layer("Conv2D", self.name, (dw,), filters=self.filters, kernel=(1, 1),
                             strides=(1, 1), pad=(0, 0, 0, 0), use_bias=self.use_bias)
        out = with_activation(graph, self, pw)
        weight_map = [(dw, 0), (pw, 0)] + ([(pw, 1)] if self.use_bias else [])
        return GraphNodes(out if isinstance(out, int) else out.output, pw, weight_map)


class BatchNormalization(Layer):
    """Keras's BatchNormalization over the channel axis. center=False / scale=False: no beta /
    gamma weight (Keras's get_weights then lists the others in the same order: [gamma,] [beta,]
    moving_mean, moving_variance); the engine node keeps all four slots with the absent one
    fixed at 0 / 1, never trained (nn/batchnorm.c), and the weight map skips it."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, name=None,
                 trainable=True):
        super().__init__(name=name, trainable=trainable)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if axis not in (-1, 3):
            raise ValueError(f"BatchNormalization '{self.name}': only the channel axis (-1) is "
                             f"supported, got axis={axis!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def build(self, input_shape):
        super().build(input_shape)
        c = (input_shape[-1],)
        if self.scale:
            self._add_weight("gamma", c, 1.0)
        if self.center:
            self._add_weight("beta", c, 0.0)
        self._add_weight("moving_mean", c, 0.0, can_train=False)
        self._add_weight("moving_variance", c, 1.0, can_train=False)

    def add_to_graph(self, graph, ids):
        node = graph.add_layer("BatchNormalization", self.name, ids, epsilon=self.epsilon,
                               momentum=self.momentum, center=int(self.center),
                               scale=int(self.scale))
        slots = [0] * self.scale + [1] * self.center + [2, 3]  # engine: gamma, beta, mean, var
        return GraphNodes(node, node, [(node, k) for k in slots])


class ReLU(Layer):
    def __init__(self, max_value=None, name=None):
        super().__init__(name=name)
        self.max_value = max_value

    def add_to_graph(self, graph, ids):
        return graph.add_layer("ReLU", self.name, ids, max_value=float(self.max_value or 0.0))


class ZeroPadding2D(Layer):
    def __init__(self, padding=1, name=None):
        super().__init__(name=name)
        if isinstance(padding, int):
            padding = ((padding, padding), (padding, padding))
        (t, b), (l, r) = (_pair(p) for p in padding)
        self.padding = ((t, b), (l, r))

    def compute_output_shape(self, s):
        (t, b), (l, r) = self.padding
        return (None if s[0] is None else s[0] + t + b,
                None if s[1] is None else s[1] + l + r, s[2])

    def add_to_graph(self, graph, ids):
        (t, b), (l, r) = self.padding
        return graph.add_layer("ZeroPadding2D", self.name, ids, pad=(t, b, l, r))


def _check_one_shape(layer, shapes):
    """Keras's merging layers (keras/src/layers/merging/base_merge.py) on a list of at least one
    input; catdog takes tensors of one shape (no broadcasting)."""
    if len(shapes) < 1:
        raise ValueError(f"A merge layer should be called on a list of at least 1 input "
                         f"(layer '{layer.name}')")
    if any(tuple(s) != tuple(shapes[0]) for s in shapes):
        raise ValueError(f"{type(layer).__name__} '{layer.name}' takes inputs of one shape "
                         f"(catdog), got {[tuple(s) for s in shapes]}")


class Add(Layer):
    """Keras's Add: the sum of any number of inputs of one shape, left to right."""

    def _check_inputs(self, shapes):
        _check_one_shape(self, shapes)

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Add", self.name, ids)


def _per_channel(s, full) -> bool:
    """One value per channel of `full` ((1, 1, C) or (C,)), broadcast over its positions."""
    return (len(full) == 3 and tuple(s) in ((1, 1, full[2]), (full[2],))
            and tuple(full[:2]) != (1, 1))


class Multiply(Layer):
    """Keras's Multiply of two tensors: equal shapes, or one value per channel ((1, 1, C), a
    squeeze-and-excite gate) times a (H, W, C) tensor."""

    def _check_inputs(self, shapes):
        if len(shapes) != 2:
            raise ValueError(f"Multiply '{self.name}' takes two inputs (catdog), got {len(shapes)}")
        a, b = (tuple(x) for x in shapes)
        if not (a == b or _per_channel(a, b) or _per_channel(b, a)):
            raise ValueError(f"Multiply '{self.name}': cannot multiply shapes {a} and {b}")
        self._out_shape = b if _per_channel(a, b) else a
        if self.input_shape is not None:  # built before the call (a loader's build_config)
            self.output_shape = self._out_shape

    def compute_output_shape(self, s):
        return getattr(self, "_out_shape", tuple(s))

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Multiply", self.name, ids)


class _Merge(Layer):
    """Keras's merging layers on tensors of one shape (engine kind Merge): Maximum, Minimum and
    Average of any number of inputs, Subtract of exactly two."""
    merge_op = 0

    def _check_inputs(self, shapes):
        _check_one_shape(self, shapes)

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Merge", self.name, ids, op=self.merge_op)


class Subtract(_Merge):
    merge_op = 0

    def _check_inputs(self, shapes):
        if len(shapes) != 2:  # keras/src/layers/merging/subtract.py
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. "
                             f"Received: input_shape={[(None,) + tuple(s) for s in shapes]}")
        _check_one_shape(self, shapes)


class Maximum(_Merge):
    merge_op = 1


class Minimum(_Merge):
    merge_op = 2


class Average(_Merge):
    merge_op = 3


class Concatenate(Layer):
    """Keras's Concatenate(axis=-1) of any number of inputs, equal in shape but along `axis`
    (keras/src/layers/merging/concatenate.py). On images (batch, H, W, C) any of axes 1, 2, 3
    (or -3, -2, -1); on vectors (batch, N) the last."""

    def __init__(self, axis: int = -1, name: Optional[str] = None, trainable: bool = True):
        super().__init__(name=name, trainable=trainable)
        self.axis = int(axis)

    def _engine_axis(self, rank: int) -> int:
        """Keras's axis on (batch, *sample) -> the sample's axis in (H, W, C) (vectors: C)."""
        full = rank + 1
        if not -full <= self.axis < full or self.axis % full == 0:
            raise ValueError(f"Concatenate '{self.name}': axis {self.axis} is out of range for "
                             f"inputs of rank {full}, or the batch axis")
        k = self.axis % full - 1  # 0-based axis of the sample
        if rank == 1:
            return 2
        if rank != 3:
            raise ValueError(f"Concatenate '{self.name}': catdog concatenates images (H, W, C) "
                             f"or vectors (N,), got rank {rank}")
        return k

    def _check_inputs(self, shapes):
        shapes = [tuple(s) for s in shapes]
        if len(shapes) < 1:
            raise ValueError(f"A `Concatenate` layer should be called on a list of at least 1 "
                             f"input (layer '{self.name}')")
        ranks = {len(s) for s in shapes}
        err = (f"A `Concatenate` layer requires inputs with matching shapes except for the "
               f"concatenation axis. Received: input_shape={[(None,) + s for s in shapes]}")
        if len(ranks) != 1:
            raise ValueError(err)
        rank = ranks.pop()
        k = self._engine_axis(rank)
        k = 0 if rank == 1 else k
        if any(s[:k] + s[k + 1:] != shapes[0][:k] + shapes[0][k + 1:] for s in shapes):
            raise ValueError(err)
        out = list(shapes[0])
        out[k] = None if any(s[k] is None for s in shapes) else sum(s[k] for s in shapes)
        self._out_shape = tuple(out)
        if self.input_shape is not None:  # built before the call (a loader's build_config)
            self.output_shape = self._out_shape

    def compute_output_shape(self, s):
        return getattr(self, "_out_shape", tuple(s))

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Concatenate", self.name, ids,
                               axis=self._engine_axis(len(self.input_shape)))


def _functional(layer_class):
    """Keras's functional spelling (layers.add([a, b]), ...): the layer called on the inputs."""
    def call(inputs, **kwargs):
        return layer_class(**kwargs)(inputs)

    call.__name__ = layer_class.__name__.lower()
    call.__doc__ = f"keras.layers.{call.__name__}(inputs, **kwargs) = {layer_class.__name__}(**kwargs)(inputs)"
    return call


class Reshape(Layer):
    """Keras's Reshape(target_shape) to (H, W, C) or (N,); one -1 is inferred. The values keep
    their (NHWC) order."""

    def __init__(self, target_shape, name=None):
        super().__init__(name=name)
        self.target_shape = tuple(int(d) for d in target_shape)
        if len(self.target_shape) not in (1, 3):
            raise ValueError(f"Reshape '{self.name}': catdog reshapes to (H, W, C) or (N,), got "
                             f"{self.target_shape}")

    def compute_output_shape(self, s):
        total, known = int(np.prod([d for d in s])), [d for d in self.target_shape if d != -1]
        free = self.target_shape.count(-1)
        if free > 1 or any(d < 1 for d in known) or total % max(int(np.prod(known)), 1):
            raise ValueError(f"Reshape '{self.name}': cannot reshape {tuple(s)} to {self.target_shape}")
        fill = total // int(np.prod(known)) if free else None
        out = tuple(fill if d == -1 else d for d in self.target_shape)
        if int(np.prod(out)) != total:
            raise ValueError(f"Reshape '{self.name}': cannot reshape {tuple(s)} to {self.target_shape}")
        return out

    def add_to_graph(self, graph, ids):
        shape = self.output_shape
        return graph.add_layer("Reshape", self.name, ids, rank=len(shape),
                               shape=shape if len(shape) == 3 else (1, 1, shape[0]))


class GlobalAveragePooling2D(Layer):
    def __init__(self, data_format=None, keepdims=False, name=None):
        super().__init__(name=name)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"GlobalAveragePooling2D '{self.name}': catdog runs channels_last only")
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, s):
        return (1, 1, s[-1]) if self.keepdims else (s[-1],)

    def add_to_graph(self, graph, ids):
        return graph.add_layer("GlobalAveragePooling2D", self.name, ids, keepdims=self.keepdims)


class Dropout(Layer):
    """Keras's Dropout(rate, noise_shape, seed): noise_shape (batch first, None for the input's
    own size) names the axes of size 1 along which the mask is shared, e.g. (None, 1, 1, C)
    drops whole channels. Draws come from catdog's counter RNG (Keras's distribution, not its
    numbers)."""

    def __init__(self, rate, noise_shape=None, seed=None, name=None):
        super().__init__(name=name)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate, self.seed = float(rate), seed
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def _shared_axes(self):
        """(h, w, c): 1 where noise_shape shares the mask, from the per-sample input shape."""
        if self.noise_shape is None:
            return (0, 0, 0)
        shape = tuple(self.input_shape)
        noise = self.noise_shape[1:] if len(self.noise_shape) == len(shape) + 1 else None
        if noise is None or any(n not in (None, 1, d) for n, d in zip(noise, shape)):
            raise ValueError(f"Dropout '{self.name}': noise_shape {self.noise_shape} does not fit "
                             f"inputs of shape (None, {', '.join(map(str, shape))}): each axis "
                             "after the batch is 1 or the input's size")
        shared = [n == 1 and d != 1 for n, d in zip(noise, shape)]
        return tuple(int(v) for v in ([False, False] + shared if len(shape) == 1 else shared))

    def build(self, input_shape):
        super().build(input_shape)
        self._shared_axes()  # a noise_shape that cannot fit is refused when called

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Dropout", self.name, ids, rate=self.rate, shared=self._shared_axes())


# The activations a Dense head ends in inside its own kernel: a loss that takes logits reads
# them before the activation (the engine's out_activation; nn/dense.c).
_HEAD_ACTIVATIONS = {_engine.ACTIVATION_LINEAR: _engine.ACT_NONE,
                     _engine.ACTIVATION_SOFTMAX: _engine.ACT_SOFTMAX,
                     _engine.ACTIVATION_SIGMOID: _engine.ACT_SIGMOID}


class Dense(Layer):
    def __init__(self, units, activation=None, use_bias=True, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self.activation, self._activation = activation_name(activation, self.name)
        self.units, self.use_bias = int(units), bool(use_bias)

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Dense '{self.name}' needs flat features per sample, shape "
                             f"(features,) or Keras's (None, features); got {input_shape}: "
                             f"add GlobalAveragePooling2D before it")
        if input_shape[0] is None:  # Keras: variables need fully-defined shapes
            raise ValueError(f"Dense '{self.name}': the last dimension of its inputs must be "
                             f"defined, got {input_shape}: a Flatten after a free input size "
                             "(None) has no fixed length; use GlobalAveragePooling2D")
        super().build(input_shape)
        self._add_glorot("kernel", (input_shape[0], self.units))
        if self.use_bias:
            self._add_weight("bias", (self.units,))

    def compute_output_shape(self, s):
        return (self.units,)

    def add_to_graph(self, graph, ids):
        if self._activation in _HEAD_ACTIVATIONS:
            return graph.add_layer("Dense", self.name, ids, units=self.units,
                                   use_bias=self.use_bias,
                                   activation=_HEAD_ACTIVATIONS[self._activation])
        dense = graph.add_layer("Dense", self.name, ids, units=self.units, use_bias=self.use_bias,
                                activation=_engine.ACT_NONE)
        return with_activation(graph, self, dense)


class Activation(Layer):
    """Keras's Activation(activation): y = f(x), f by name (catdog/layers/activations.py)."""

    def __init__(self, activation, name=None):
        super().__init__(name=name)
        self.activation, self._activation = activation_name(activation, self.name)

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Activation", self.name, ids, function=self._activation)


class Flatten(Layer):
    """Keras's Flatten on (H, W, C): (H * W * C,) in NHWC order, the memory order."""

    def compute_output_shape(self, s):
        if any(d is None for d in s):
            return (None,)
        return (int(np.prod(s)),)

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Flatten", self.name, ids)


def reset_name_counters() -> None:
    _counters.clear()


class Rescaling(Layer):
    """y = x * scale + offset (Keras Rescaling); runs in the engine graph."""

    def __init__(self, scale, offset=0.0, name=None):
        super().__init__(name=name)
        self.scale, self.offset = float(scale), float(offset)

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Rescaling", self.name, ids, scale=self.scale, offset=self.offset)


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    def add_to_graph(self, graph, ids):
        return graph.add_layer("GlobalMaxPooling2D", self.name, ids, keepdims=self.keepdims)


add, subtract, multiply = _functional(Add), _functional(Subtract), _functional(Multiply)
maximum, minimum, average = _functional(Maximum), _functional(Minimum), _functional(Average)


def concatenate(inputs, axis: int = -1, **kwargs):
    """keras.layers.concatenate(inputs, axis=-1, **kwargs) = Concatenate(axis, **kwargs)(inputs)"""
    return Concatenate(axis=axis, **kwargs)(inputs)
