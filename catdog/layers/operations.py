"""Arithmetic on symbolic tensors, as Keras 3 records `x + 3.0`, `x * y` or `-x` in a functional
model (keras/src/ops/numpy.py's Add, Subtract, Multiply, Divide, Negative): operations in the
graph that are not layers, so `model.layers` does not list them. MobileNetV3's
`layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)` is written this way.

In the engine a tensor with a scalar is one Rescaling node (y = x * scale + offset); tensor with
tensor is an Add or a Multiply node (a difference: Rescaling(-1) then Add).

Each operation keeps `keras_op`, the class Keras records for the call (Add, Subtract, Multiply,
TrueDivide, Negative; keras/src/backend/common/keras_tensor.py), and a scalar one its constant
as given and on which side, so that a saved model's config names the call as Keras's does
(catdog/saving/serialization.py)."""
import numpy as np

from catdog.layers.core import Layer, Multiply, _auto_name, _per_channel


class Operation(Layer):
    """A graph operation made by arithmetic on KerasTensors; excluded from model.layers."""

    is_operation = True


# catdog's op names -> the keras.ops class Keras records (Keras names the op after it)
KERAS_OPS = {"add": "Add", "subtract": "Subtract", "multiply": "Multiply",
             "true_divide": "TrueDivide", "negative": "Negative"}


class ScalarAffine(Operation):
    """y = x * scale + offset: x + c, x - c, c - x, x * c, x / c, -x (`constant` c on the
    left when `reverse`)."""

    def __init__(self, scale, offset, op_name, constant=None, reverse=False, name=None):
        super().__init__(name=name or _auto_name(op_name))
        self.scale, self.offset = float(scale), float(offset)
        self.keras_op, self.constant, self.reverse = KERAS_OPS[op_name], constant, bool(reverse)

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Rescaling", self.name, ids, scale=self.scale, offset=self.offset)


class TensorAdd(Operation):
    """a + b, or a - b (negate_b), of two tensors of one shape."""

    def __init__(self, negate_b=False, name=None):
        op_name = "subtract" if negate_b else "add"
        super().__init__(name=name or _auto_name(op_name))
        self.negate_b, self.keras_op = negate_b, KERAS_OPS[op_name]

    def _check_inputs(self, shapes):
        if len(shapes) != 2 or tuple(shapes[0]) != tuple(shapes[1]):
            raise ValueError(f"'{self.name}': catdog adds or subtracts tensors of one shape, got "
                             f"{[tuple(s) for s in shapes]}")

    def add_to_graph(self, graph, ids):
        a, b = ids
        if self.negate_b:
            b = graph.add_layer("Rescaling", self.name + "/negative", (b,), scale=-1.0, offset=0.0)
        return graph.add_layer("Add", self.name, (a, b))


class TensorMultiply(Multiply, Operation):
    """a * b: equal shapes or a per-channel gate (layers.Multiply's rule)."""

    keras_op = "Multiply"

    def __init__(self, name=None):
        Multiply.__init__(self, name=name or _auto_name("multiply"))


CHANNEL_AFFINE_MAX = 8  # csrc/nn/channel_affine.c: channels of a per-channel map


class ChannelSlice:
    """x[..., i] on an image tensor (H, W, C): channel i, as Keras's GetItem records it. The
    engine runs (H, W, C) images, so a slice only goes into catdog.ops.stack (the "caffe"
    preprocess_input's RGB -> BGR); it is not a tensor a layer takes."""

    def __init__(self, source, index, name=None):
        c = source.shape[-1]
        if not -c <= index < c:
            raise IndexError(f"channel {index} of a tensor with {c} channels")
        self.source, self.index = source, index % c
        self.name = name or _auto_name("get_item")
        self.shape = tuple(source.shape[:-1])

    def __repr__(self):
        return f"<channel {self.index} of {self.source!r}>"


class ChannelStack(Operation):
    """ops.stack([x[..., i] for i in order], axis=-1): x's channels in `order`, a permutation,
    as Keras records it (a GetItem per channel, then a Stack; `slice_names` keep the GetItems'
    names for a saved config). Engine: ChannelAffine with source `order`, offset 0."""

    keras_op = "Stack"

    def __init__(self, order, slice_names, name=None):
        super().__init__(name=name or _auto_name("stack"))
        self.order, self.slice_names = tuple(int(i) for i in order), tuple(slice_names)

    def add_to_graph(self, graph, ids):
        c = len(self.order)
        return graph.add_layer("ChannelAffine", self.name, ids, channels=c, source=self.order,
                               offset=(0.0,) * c)


def stack(values, axis=0, name=None):
    """Keras's ops.stack on symbolic channels of one image: `[x[..., i] for i in order]` with
    axis -1 (or 2, the sample's last axis) -> ChannelStack. Other stacks of tensors are not
    something catdog's engine runs."""
    values = list(values)
    if not values or not all(isinstance(v, ChannelSlice) for v in values):
        raise NotImplementedError("catdog stacks channel slices x[..., i] of one image tensor "
                                  "in a model (the caffe preprocess_input); got "
                                  f"{[type(v).__name__ for v in values][:4]}")
    source = values[0].source
    c = source.shape[-1]
    if axis not in (-1, 2) or any(v.source is not source for v in values):
        raise NotImplementedError("catdog stacks the channels of one image tensor along the last "
                                  f"axis (axis=-1), got axis={axis}")
    order = [v.index for v in values]
    if sorted(order) != list(range(c)) or c > CHANNEL_AFFINE_MAX:
        raise NotImplementedError(f"catdog stacks every channel of an image once (a reordering "
                                  f"of up to {CHANNEL_AFFINE_MAX} channels), got channels "
                                  f"{order} of {c}")
    return ChannelStack(order, [v.name for v in values], name=name)(source)


class ConstantAdd(Operation):
    """x + t or x - t for a constant t with one value per channel (shape (c,), or (1, 1, 1, c)
    as Keras's imagenet_utils makes its mean tensor): Keras's Add / Subtract with a constant
    tensor argument, kept as written (`constant`, a Keras `__tensor__` record, and on which
    side) for a saved config. Engine: ChannelAffine with identity source, offset +-t."""

    def __init__(self, values, shape, subtract=False, reverse=False, name=None):
        op_name = "subtract" if subtract else "add"
        super().__init__(name=name or _auto_name(op_name))
        self.keras_op, self.reverse = KERAS_OPS[op_name], bool(reverse)
        self.values = np.asarray(values, np.float32).reshape(-1)
        self.offset = -self.values if subtract else self.values
        self.constant = {"class_name": "__tensor__",
                         "config": {"value": self.values.reshape(shape).tolist(),
                                    "dtype": "float32"}}

    def _set_geometry(self, input_shape):
        if input_shape[-1] != len(self.values):
            raise ValueError(f"'{self.name}': a constant of {len(self.values)} values per "
                             f"channel on a tensor of shape {tuple(input_shape)}")
        super()._set_geometry(input_shape)

    def add_to_graph(self, graph, ids):
        c = len(self.values)
        return graph.add_layer("ChannelAffine", self.name, ids, channels=c, source=tuple(range(c)),
                               offset=tuple(float(v) for v in self.offset))


def _per_channel_constant(a, b):
    """b as (values, shape) when it is an array of one value per channel of tensor a, else
    None (a scalar goes the ScalarAffine way)."""
    if isinstance(b, (int, float)) or not hasattr(b, "shape") or np.ndim(b) == 0:
        return None
    arr = np.asarray(b)
    c = a.shape[-1]
    if arr.size != c or (arr.ndim > 1 and any(d != 1 for d in arr.shape[:-1])) or arr.ndim > 4:
        raise NotImplementedError(f"catdog adds a constant of one value per channel ({c}) to a "
                                  f"tensor in a model, got shape {arr.shape}")
    if c > CHANNEL_AFFINE_MAX:
        raise NotImplementedError(f"catdog adds a per-channel constant to tensors of up to "
                                  f"{CHANNEL_AFFINE_MAX} channels in a model, got {c}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("a constant with NaN or Inf values")
    return arr.astype(np.float32).reshape(-1), arr.shape


def arithmetic(op, a, b, reverse=False, name=None):
    """a <op> b for a KerasTensor a and a KerasTensor or a number b (b <op> a when reverse);
    `name` names the operation (a loaded file's), else it is Keras's automatic one."""
    from catdog.models import KerasTensor

    if isinstance(b, KerasTensor):
        x, y = (b, a) if reverse else (a, b)
        if op == "add":
            return TensorAdd(name=name)([x, y])
        if op == "subtract":
            return TensorAdd(negate_b=True, name=name)([x, y])
        if op == "multiply":
            return TensorMultiply(name=name)([x, y])
        raise NotImplementedError(f"catdog cannot {op} two tensors in a model yet (only add, "
                                  "subtract and multiply)")
    per_channel = _per_channel_constant(a, b)
    if per_channel is not None:
        if op == "add" or (op == "subtract" and not reverse):
            return ConstantAdd(*per_channel, subtract=op == "subtract", reverse=reverse,
                               name=name)(a)
        raise NotImplementedError(f"catdog cannot {op} a per-channel constant {'and' if reverse else 'with'} "
                                  "a tensor in a model yet (only x + t, t + x and x - t)")
    try:
        c = float(b)
    except (TypeError, ValueError):
        return NotImplemented
    # the constant as the user wrote it (3 stays 3 in a saved config), a float otherwise
    kw = dict(constant=b if type(b) in (int, float) else c, reverse=reverse, name=name)
    if op == "add":
        return ScalarAffine(1.0, c, "add", **kw)(a)
    if op == "subtract":
        return (ScalarAffine(-1.0, c, "subtract", **kw)(a) if reverse
                else ScalarAffine(1.0, -c, "subtract", **kw)(a))
    if op == "multiply":
        return ScalarAffine(c, 0.0, "multiply", **kw)(a)
    if op == "divide" and not reverse:
        if c == 0:
            raise ZeroDivisionError("a tensor divided by 0")
        return ScalarAffine(1.0 / c, 0.0, "true_divide", **kw)(a)
    raise NotImplementedError(f"catdog cannot compute a number divided by a tensor in a model")


__all__ = ["Operation", "ScalarAffine", "TensorAdd", "TensorMultiply", "ChannelSlice",
           "ChannelStack", "ConstantAdd", "stack", "arithmetic", "_per_channel"]
