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


__all__ = ["Operation", "ScalarAffine", "TensorAdd", "TensorMultiply", "arithmetic", "_per_channel"]
