"""Arithmetic on symbolic tensors, as Keras 3 records `x + 3.0`, `x * y` or `-x` in a functional
model (keras/src/ops/numpy.py's Add, Subtract, Multiply, Divide, Negative): operations in the
graph that are not layers, so `model.layers` does not list them. MobileNetV3's
`layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)` is written this way.

In the engine a tensor with a scalar is one Rescaling node (y = x * scale + offset); tensor with
tensor is an Add or a Multiply node (a difference: Rescaling(-1) then Add)."""
from catdog.layers.core import Layer, Multiply, _auto_name, _per_channel


class Operation(Layer):
    """A graph operation made by arithmetic on KerasTensors; excluded from model.layers."""

    is_operation = True


class ScalarAffine(Operation):
    """y = x * scale + offset: x + c, x - c, c - x, x * c, x / c, -x."""

    def __init__(self, scale, offset, op_name):
        super().__init__(name=_auto_name(op_name))
        self.scale, self.offset = float(scale), float(offset)

    def add_to_graph(self, graph, ids):
        return graph.add_layer("Rescaling", self.name, ids, scale=self.scale, offset=self.offset)


class TensorAdd(Operation):
    """a + b, or a - b (negate_b), of two tensors of one shape."""

    def __init__(self, negate_b=False):
        super().__init__(name=_auto_name("subtract" if negate_b else "add"))
        self.negate_b = negate_b

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

    def __init__(self):
        Multiply.__init__(self, name=_auto_name("multiply"))


def arithmetic(op, a, b, reverse=False):
    """a <op> b for a KerasTensor a and a KerasTensor or a number b (b <op> a when reverse)."""
    from catdog.models import KerasTensor

    if isinstance(b, KerasTensor):
        x, y = (b, a) if reverse else (a, b)
        if op == "add":
            return TensorAdd()([x, y])
        if op == "subtract":
            return TensorAdd(negate_b=True)([x, y])
        if op == "multiply":
            return TensorMultiply()([x, y])
        raise NotImplementedError(f"catdog cannot {op} two tensors in a model yet (only add, "
                                  "subtract and multiply)")
    try:
        c = float(b)
    except (TypeError, ValueError):
        return NotImplemented
    if op == "add":
        return ScalarAffine(1.0, c, "add")(a)
    if op == "subtract":
        return ScalarAffine(-1.0, c, "subtract")(a) if reverse else ScalarAffine(1.0, -c, "subtract")(a)
    if op == "multiply":
        return ScalarAffine(c, 0.0, "multiply")(a)
    if op == "divide" and not reverse:
        if c == 0:
            raise ZeroDivisionError("a tensor divided by 0")
        return ScalarAffine(1.0 / c, 0.0, "divide")(a)
    raise NotImplementedError(f"catdog cannot compute a number divided by a tensor in a model")


__all__ = ["Operation", "ScalarAffine", "TensorAdd", "TensorMultiply", "arithmetic", "_per_channel"]
