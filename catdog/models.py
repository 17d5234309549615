"""Functional models on the C engine: catdog.Input, catdog.Model, catdog.Sequential.

A Model is a chain of layers (nested models allowed, as in the lab). Running it compiles the
flattened layer chain into one engine graph; layers keep their weights as NumPy arrays, pushed
into the graph before a run and pulled back after training."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from catdog import _checks, _engine, _lifetime
from catdog.layers.core import GraphNodes, InputLayer, Layer

MODE_INHERIT, MODE_INFERENCE, MODE_TRAINING = (_engine.MODE_INHERIT, _engine.MODE_INFERENCE,
                                              _engine.MODE_TRAINING)


class KerasTensor:
    """A symbolic tensor: the output of `layer` called on `inputs` (shape without batch)."""

    __array_ufunc__ = None  # numpy array + tensor: NumPy defers to __radd__ (an operation)

    def __init__(self, shape, layer, inputs, training=None):
        self.shape = tuple(shape)
        self.layer = layer
        self.inputs = inputs
        self.training = training

    def __repr__(self):
        return f"<KerasTensor shape=(None, {', '.join(map(str, self.shape))}) from {self.layer.name}>"

    # arithmetic records graph operations, as Keras 3 (catdog/layers/operations.py)
    def __add__(self, other):
        return _arithmetic("add", self, other)

    def __radd__(self, other):
        return _arithmetic("add", self, other, reverse=True)

    def __sub__(self, other):
        return _arithmetic("subtract", self, other)

    def __rsub__(self, other):
        return _arithmetic("subtract", self, other, reverse=True)

    def __mul__(self, other):
        return _arithmetic("multiply", self, other)

    def __rmul__(self, other):
        return _arithmetic("multiply", self, other, reverse=True)

    def __truediv__(self, other):
        return _arithmetic("divide", self, other)

    def __rtruediv__(self, other):
        return _arithmetic("divide", self, other, reverse=True)

    def __getitem__(self, key):
        """x[..., i]: channel i of an image tensor, Keras's GetItem (for ops.stack)."""
        from catdog.layers.operations import ChannelSlice

        if (isinstance(key, tuple) and len(key) == 2 and key[0] is Ellipsis
                and isinstance(key[1], int) and len(self.shape) == 3):
            return ChannelSlice(self, key[1])
        raise NotImplementedError(f"catdog takes x[..., i] (one channel of an image tensor) in "
                                  f"a model, got x[{key!r}] on shape {self.shape}")

    def __neg__(self):
        from catdog.layers.operations import ScalarAffine

        return ScalarAffine(-1.0, 0.0, "negative")(self)


def _arithmetic(op, a, b, reverse=False):
    from catdog.layers.operations import arithmetic

    return arithmetic(op, a, b, reverse)


# What Model keeps per engine graph; a model with a free input size has one per size
_GRAPH_STATE = ("_graph", "_graph_index", "_graph_outputs", "_weight_slots", "_pushed",
                "_graph_generation", "_flat_layers", "_engine_compiled")
GRAPHS_KEPT = 2  # sizes whose graphs stay built besides the one in use
# A layer's attributes that follow its input size (Layer._set_geometry)
_GEOMETRY = ("input_shape", "output_shape", "pads", "_out_shape")


def _is_free(shape) -> bool:
    """An image shape with a None height or width."""
    return shape is not None and len(shape) == 3 and None in tuple(shape)[:2]


def _geometry(layer) -> dict:
    return {k: layer.__dict__[k] for k in _GEOMETRY if k in layer.__dict__}


def _set_concrete_geometry(layer, shapes) -> None:
    """Give a layer built on a free size the geometry of concrete input `shapes` (restore
    its own with layer.__dict__.update(saved _geometry))."""
    if len(shapes) > 1:
        layer._check_inputs(shapes)
    layer._set_geometry(shapes[0])


def _optimizer_snapshot(g, trainable_slots):
    """(iterations, {(k, slot): array}) of graph `g`'s optimizer state, k the trainable
    weight's position in `trainable_slots` (Model._trainable_slots)."""
    n = g.opt_slots()
    return g.opt_iterations(), {(k, s): g.get_opt_slot(i, w, s)
                                for k, (i, w) in enumerate(trainable_slots) for s in range(n)}


def Input(shape, name=None) -> KerasTensor:
    layer = InputLayer(shape, name=name)
    return KerasTensor(layer.output_shape, layer, [], None)


def keras_node_order(output: KerasTensor) -> List[KerasTensor]:
    """The calls (tensors) leading to `output`, operations included, in Keras 3's operation
    order (keras/src/ops/function.py map_graph): by depth, the longest path to the output,
    deepest first; ties by the order a depth-first walk from the output (a node's inputs in
    order) first meets their layer. It is topological. keras_layer_order lists its layers;
    a saved functional config lists its entries in it, as Keras's get_config does."""
    index: Dict[int, int] = {}
    finished, nodes = set(), []

    def walk(t):
        if id(t) in finished:
            return
        index.setdefault(id(t.layer), len(index))
        for i in t.inputs:
            walk(i)
        finished.add(id(t))
        nodes.append(t)

    walk(output)
    node_depth: Dict[int, int] = {}
    layer_depth: Dict[int, int] = {}
    for t in reversed(nodes):
        d = max(node_depth.setdefault(id(t), 0), layer_depth.get(id(t.layer), 0))
        layer_depth[id(t.layer)] = node_depth[id(t)] = d
        for i in t.inputs:
            node_depth[id(i)] = max(d + 1, node_depth.get(id(i), 0))
    return sorted(nodes, key=lambda t: (-layer_depth[id(t.layer)], index[id(t.layer)]))


def keras_layer_order(output: KerasTensor) -> List[Layer]:
    """A functional model's layers in Keras 3's order (keras_node_order). Operations (x + 3.0)
    count for the depths but are not listed. For a chain this is the execution order; for
    ResNet's shortcut convolutions it is not (Keras lists conv2_block1_0_conv after
    conv2_block1_2_relu), and `model.layers[:k]`, `get_layer(index=)` and the Keras 3
    `.weights.h5` paths (class names counted in this order) depend on it. The engine keeps
    running the model's own topological order."""
    out, seen = [], set()
    for t in keras_node_order(output):
        if id(t.layer) not in seen and not getattr(t.layer, "is_operation", False):
            seen.add(id(t.layer))
            out.append(t.layer)
    return out


def _is_augmentation(layer) -> bool:
    return getattr(layer, "is_augmentation", False)


def _split_validation(x, y, fraction):
    """(x_train, y_train, (x_val, y_val)): Keras's split at floor(n * (1 - fraction))."""
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"validation_split must be in (0, 1), got {fraction}")
    if y is None or not isinstance(x, (np.ndarray, list, tuple)):
        raise ValueError("validation_split is only supported for arrays fit(x, y, ...); for a "
                         "dataset pass validation_data")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"got {len(x)} images and {len(y)} labels")
    split_at = int(np.floor(len(x) * (1.0 - float(fraction))))
    if split_at == 0 or split_at == len(x):
        raise ValueError(f"validation_split={fraction} leaves no samples for training or for "
                         f"validation out of {len(x)}")
    return x[:split_at], y[:split_at], (x[split_at:], y[split_at:])


class Model(Layer):
    def __init__(self, inputs: KerasTensor, outputs: KerasTensor, name: Optional[str] = None):
        super().__init__(name=name or None)
        self._init_state()
        self._set_structure(inputs, outputs)
        # Keras lists layers, not the operations arithmetic on tensors recorded, in its order
        self.layers: List[Layer] = keras_layer_order(self._nodes[-1])

    def _init_state(self):
        self._input = self._output = None
        self._nodes: List[KerasTensor] = []
        self.input_shape = self.output_shape = None
        self._graph = None
        self._graph_index: Dict[int, int] = {}  # id(layer) -> the node holding its weights
        self._graph_outputs: Dict[str, int] = {}  # layer name -> the node its output comes from
        self._weight_slots: Dict[int, list] = {}  # id(layer) -> [(node, engine weight index)]
        self._pushed: Dict[int, int] = {}
        self._graph_dirty = False  # the graph holds newer weights than the layers
        self._graph_generation = -1  # _lifetime.generation() when the graph was last synced
        self._flat_layers: List[Layer] = []
        self._engine_compiled = False  # the graph has the compiled loss and optimizer state
        # a free input size (None in Input's shape): a graph per concrete (H, W), see _use_size
        self._graph_size: Optional[Tuple[int, int]] = None
        self._other_graphs: Dict[Tuple[int, int], dict] = {}  # size -> its _GRAPH_STATE
        self._opt_owner: Optional[Tuple[int, int]] = None  # the size whose graph last trained
        self._opt_snapshot = None  # an evicted owner's optimizer state, until the next step
        self._augment: list = []  # augmentation layers, run in the data pipeline (fit only)
        self._compiled = None
        self.history = None
        self.stop_training = False

    def _set_structure(self, inputs, outputs):
        """The chain from `inputs` (a catdog.Input tensor) to `outputs`; drops any engine graph
        built for an older structure."""
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError("catdog models take exactly one input")
            inputs = inputs[0]
        if isinstance(outputs, (list, tuple)):
            if len(outputs) != 1:
                raise ValueError("catdog models have exactly one output")
            outputs = outputs[0]
        if not isinstance(inputs, KerasTensor) or not isinstance(inputs.layer, InputLayer):
            raise TypeError("Model inputs must come from catdog.Input(...)")
        if not isinstance(outputs, KerasTensor):
            raise TypeError(f"Model outputs must be tensors made by calling layers on "
                            f"catdog.Input(...), got {type(outputs).__name__}")
        nodes = self._topological(outputs)
        if nodes[0] is not inputs:
            raise ValueError("the model's output does not depend on its input")
        if self._graph_dirty:  # trained weights still only in the old graph: keep them
            self._pull_weights()
        self._input, self._output, self._nodes = inputs, outputs, nodes
        self.input_shape = inputs.shape
        self.output_shape = outputs.shape
        self._graph = None
        self._graph_index, self._graph_outputs, self._pushed = {}, {}, {}
        self._graph_size, self._other_graphs = None, {}
        self._opt_owner = self._opt_snapshot = None
        self._engine_compiled = False
        _lifetime.changed()  # graphs holding these layers must re-sync with them

    def __del__(self):
        _lifetime.release(self)  # trained weights go back to the layers; the graph is freed

    # -- structure ---------------------------------------------------------------------
    @staticmethod
    def _topological(output: KerasTensor) -> List[KerasTensor]:
        order, seen = [], set()

        def visit(t):
            if id(t) in seen:
                return
            seen.add(id(t))
            for i in t.inputs:
                visit(i)
            order.append(t)

        visit(output)
        return order

    def __call__(self, inputs, training=None):
        """On a catdog.Input tensor: this model as a layer of a bigger one. On an array: run
        it now, as Keras 3 does eagerly (see `_call_eager`)."""
        if isinstance(inputs, (list, tuple)) and len(inputs) == 1 and isinstance(inputs[0], KerasTensor):
            inputs = inputs[0]
        if not isinstance(inputs, KerasTensor):
            return self._call_eager(inputs, training)
        self._require_built(inputs.shape)
        shape = tuple(inputs.shape)
        fits = len(shape) == len(self.input_shape) and all(
            e is None or e == g for e, g in zip(self.input_shape, shape))
        if not fits:
            raise ValueError(f"model '{self.name}' expects inputs of shape {self.input_shape}, "
                             f"got {inputs.shape}")
        # a free-size model called on a sized tensor: its output has that size's shape, as
        # Keras computes it (a Flatten on top then has a length)
        out = self._output_shape_for(shape) if shape != tuple(self.input_shape) else self.output_shape
        return KerasTensor(out, self, [inputs], training)

    def _output_shape_for(self, input_shape) -> tuple:
        """The output shape for a (more) concrete input shape, the layers' own geometry kept."""
        shapes = {}
        for t in self._nodes:
            layer = t.layer
            if not t.inputs:  # the input
                shapes[id(t)] = tuple(input_shape)
                continue
            ins = [shapes[id(i)] for i in t.inputs]
            if isinstance(layer, Model):
                shapes[id(t)] = layer._output_shape_for(ins[0])
            elif _is_free(layer.input_shape):
                saved = _geometry(layer)
                try:
                    _set_concrete_geometry(layer, ins)
                    shapes[id(t)] = tuple(layer.output_shape)
                finally:
                    layer.__dict__.update(saved)
            else:
                shapes[id(t)] = tuple(layer.output_shape)
        return shapes[id(self._nodes[-1])]

    def _require_built(self, input_shape=None):
        """A functional model is built from the start (Sequential overrides this)."""

    def _call_eager(self, x, training=None):
        """model(x) on an array (n, *input_shape) -> array, with Keras 3's defaults: when
        `training` is None, augmentation layers augment (their call default is training=True,
        a fresh draw per call) while Dropout and BatchNormalization run in inference mode;
        training=False: inference throughout; training=True: training mode throughout (BN
        batch statistics, moving statistics updated, dropout). Nodes called with an explicit
        `training=` (base_model(x, training=False)) keep it."""
        from catdog._array import as_array

        if isinstance(x, (list, tuple)) and not isinstance(x, np.ndarray):
            if len(x) != 1:
                raise ValueError(f"model '{self.name}' takes one input, got {len(x)}")
            x = x[0]
        x = np.asarray(x)
        self._require_built(x.shape[1:] if x.ndim > 1 else None)
        x = self._check_x(x)
        flat, augment = self._flatten()
        if augment and training is not False:
            from catdog.layers.preprocessing import apply_layers

            x = apply_layers(augment, x, training=True)
        if len(flat) == 1:  # only augmentation layers after the input
            return as_array(x)
        g = self._ensure_graph(x.shape[1:3])
        if training:
            g.forward(x, True)
            self._mark_trained()  # BN moving statistics moved
        else:
            g.forward(x, False, _engine.KEEP_LAST)  # lean: only the output is kept
        return as_array(g.get_output(g.num_layers() - 1, x.shape[0]))

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        _lifetime.changed()
        for layer in self.layers:
            layer.trainable = value

    def get_layer(self, name=None, index=None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named '{name}' in model '{self.name}' (layers: "
                         f"{', '.join(l.name for l in self.layers[:5])}, ...)")

    def _flatten(self):
        """(layer, input positions, effective trainable, mode) for the engine graph, nested
        models expanded, augmentation layers collected separately."""
        self._require_built()
        flat, augment = [], []

        def expand(model, input_pos, trainable_parent, mode):
            pos = {}
            for t in model._nodes:
                layer = t.layer
                if isinstance(layer, InputLayer):
                    if input_pos is None:
                        flat.append((layer, [], False, mode))
                        pos[id(t)] = len(flat) - 1
                    else:
                        pos[id(t)] = input_pos
                    continue
                ins = [pos[id(i)] for i in t.inputs]
                m = mode
                if t.training is not None and mode == MODE_INHERIT:
                    m = MODE_TRAINING if t.training else MODE_INFERENCE
                tr = trainable_parent and layer.trainable
                if isinstance(layer, Model):  # nested model (Sequential included): inline it
                    layer._require_built()
                    pos[id(t)] = expand(layer, ins[0], tr, m)
                elif _is_augmentation(layer):
                    if ins[0] != 0:
                        raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}): "
                                         "augmentation layers must come right after the input")
                    augment.append(layer)
                    pos[id(t)] = 0
                else:
                    flat.append((layer, ins, tr, m))
                    pos[id(t)] = len(flat) - 1
            return pos[id(model._nodes[-1])]

        expand(self, None, True, MODE_INHERIT)
        return flat, augment

    # -- engine graph --------------------------------------------------------------------
    def _mark_trained(self):
        """The graph now holds newer weights than its layers (a step ran, or BN statistics
        moved). Models sharing these layers must fetch them before their next run; this
        model's own graph stays current."""
        if not self._graph_dirty:
            self._graph_dirty = True
            self._changed_here()

    def _changed_here(self):
        """Bump the generation for a change made through this model's own graph: the others
        must re-read, while this graph, if it was current, stays current."""
        current = self._graph_generation == _lifetime.generation()
        generation = _lifetime.changed()
        if current:
            self._graph_generation = generation

    def _free_size(self) -> bool:
        """The input's height or width is None: any image size, a graph per size."""
        shape = self.input_shape
        return shape is not None and len(shape) == 3 and None in shape[:2]

    def _use_size(self, size) -> None:
        """Make the graph for images of `size` (H, W) the one in use. A model with a free input
        size keeps an engine graph per size, as a graph keeps a plan per batch size: the engine
        sizes every buffer and primitive for one input. Switching hands the trained weights of
        the graph in use to the layers first; the other graph re-syncs from them like after
        any change. The optimizer state follows training (training._engine_ready). Besides the
        graph in use, the GRAPHS_KEPT most recent sizes stay built (fit at 160 with validation
        at 224 switches back and forth)."""
        if size is None or len(size) != 2 or not all(isinstance(v, (int, np.integer)) for v in size):
            raise ValueError(f"model '{self.name}' takes images of any size "
                             f"{_checks._shape(self.input_shape)}: give it a batch of images "
                             f"(the size is planned from the first), got size {size!r}")
        size = (int(size[0]), int(size[1]))
        if size == self._graph_size:
            return
        if self._graph_dirty:
            self._pull_weights()
        if self._graph is not None and self._graph_size is not None:
            self._other_graphs[self._graph_size] = {k: getattr(self, k) for k in _GRAPH_STATE}
        state = self._other_graphs.pop(size, None)
        while len(self._other_graphs) > GRAPHS_KEPT:
            old_size = next(iter(self._other_graphs))  # dicts keep insertion order: the oldest
            old = self._other_graphs.pop(old_size)
            if self._opt_owner == old_size and old["_engine_compiled"]:
                self._opt_snapshot = _optimizer_snapshot(
                    old["_graph"], self._trainable_slots(old["_weight_slots"]))
                self._opt_owner = None
        if state is None:
            state = {"_graph": None, "_graph_index": {}, "_graph_outputs": {},
                     "_weight_slots": {}, "_pushed": {}, "_graph_generation": -1,
                     "_flat_layers": [], "_engine_compiled": False}
        self.__dict__.update(state)
        self._graph_size = size

    def _trainable_slots(self, weight_slots=None):
        """(node, engine weight index) of each trainable weight, in the model's order: the
        optimizer's slots, the same in every graph of this model (one build order)."""
        weight_slots = self._weight_slots if weight_slots is None else weight_slots
        return [slot for layer, tr in self._trainable_map() if tr
                for slot, (_, _, can_train) in zip(weight_slots[id(layer)], layer._weights)
                if can_train]

    def _optimizer_state(self):
        """(iterations, {(k, slot): array}) of the newest optimizer state, or None before the
        first run after compile(): the graph that trained last, or a kept snapshot."""
        if self._graph_size is None:  # one graph
            if self._graph is None or not self._engine_compiled:
                return None
            return _optimizer_snapshot(self._graph, self._trainable_slots())
        if self._opt_owner == self._graph_size and self._engine_compiled:
            return _optimizer_snapshot(self._graph, self._trainable_slots())
        other = self._other_graphs.get(self._opt_owner)
        if other is not None and other["_engine_compiled"]:
            return _optimizer_snapshot(other["_graph"],
                                       self._trainable_slots(other["_weight_slots"]))
        return self._opt_snapshot

    def _set_optimizer_state(self, g, state) -> None:
        iterations, arrays = state
        slots = self._trainable_slots()
        for (k, s), a in arrays.items():
            i, w = slots[k]
            g.set_opt_slot(i, w, s, np.ascontiguousarray(a, np.float32))
        g.opt_iterations(int(iterations))

    def _take_optimizer_state(self, g) -> None:
        """Before a training step on graph `g` (the one in use) of a model with a free input
        size: if another size's graph trained last, or a loaded file left a state, its
        optimizer state (slots and step count) comes over first."""
        size = self._graph_size
        if size is None or self._opt_owner == size:
            return
        state = self._optimizer_state()
        if state is not None:
            self._set_optimizer_state(g, state)
        self._opt_owner, self._opt_snapshot = size, None

    def _forget_optimizer_state(self) -> None:
        """compile(): every graph starts its optimizer afresh at its next run."""
        self._engine_compiled = False
        for state in self._other_graphs.values():
            state["_engine_compiled"] = False
        self._opt_owner = self._opt_snapshot = None

    def _ensure_graph(self, size=None):
        """The engine graph, in sync with the layers. `size`: the (H, W) of the images about
        to run, which picks the graph of a model with a free input size (ignored otherwise)."""
        self._require_built()
        if self._free_size():
            self._use_size(size)
        if self._graph is not None and self._graph_generation == _lifetime.generation():
            return self._graph  # nothing a graph mirrors changed since it was last synced
        flat, augment = self._flatten()
        self._augment = augment
        if self._graph is None:
            self._build_graph(flat)
        g = self._graph
        for layer, *_ in flat:  # weights another model trained since: fetch them first
            layer._sync_from_owners()
            _lifetime.add_owner(layer, self)
        for layer, _, tr, mode in flat:
            slots = self._weight_slots[id(layer)]
            for i in {self._graph_index[id(layer)]} | {node for node, _ in slots}:
                g.set_trainable(i, tr)
                g.set_mode(i, mode)
            if self._pushed.get(id(layer)) != layer._version:
                for (i, w), (_, value, _) in zip(slots, layer._weights):
                    g.set_weight(i, w, value)
                self._pushed[id(layer)] = layer._version
        self._graph_generation = _lifetime.generation()
        return g

    def _build_graph(self, flat) -> None:
        """One engine node or more per layer, in `flat`'s order. With a free input size each
        layer first takes the geometry of the size in use (its "same" paddings, its shapes:
        Layer._set_geometry), and gets its free one back afterwards."""
        g = _engine.Graph()
        out = {}    # id(layer) -> the node its output comes from (a vector input adds two)
        index = {}  # id(layer) -> the node holding its weights (layers.core.GraphNodes)
        slots = {}  # id(layer) -> (node, engine weight index) of each of its weights
        concrete = {}  # id(layer) -> its output shape in this graph
        saved = []  # (layer, its free geometry) to restore
        try:
            for layer, ins, _, _ in flat:
                if isinstance(layer, InputLayer):
                    shapes = [self._graph_size + tuple(layer.output_shape[2:])
                              if self._graph_size is not None else layer.output_shape]
                else:
                    shapes = [concrete[id(flat[p][0])] for p in ins]
                if _is_free(layer.input_shape):  # a free size (this model's, a nested one's)
                    saved.append((layer, _geometry(layer)))
                    _set_concrete_geometry(layer, shapes)
                concrete[id(layer)] = layer.output_shape
                try:
                    nodes = layer.add_to_graph(g, [out[id(flat[p][0])] for p in ins])
                except NotImplementedError as e:
                    raise ValueError(str(e)) from None
                if isinstance(nodes, int):
                    nodes = GraphNodes(nodes, nodes)
                out[id(layer)], index[id(layer)] = nodes.output, nodes.weights
                slots[id(layer)] = nodes.weight_map or [(nodes.weights, w)
                                                        for w in range(len(layer._weights))]
        finally:
            for layer, attrs in saved:
                layer.__dict__.update(attrs)
        self._graph, self._graph_index, self._pushed = g, index, {}
        self._weight_slots = slots
        self._graph_outputs = {layer.name: out[id(layer)] for layer, *_ in flat}
        self._flat_layers = [l for l, *_ in flat]
        from catdog import random as _random

        g.set_seed(_random.get_seed())

    def _push_changed(self):
        """Send the graph the weights set in Python since it last had them (a callback's
        `set_weights` during fit): set_weights pulls first, so a layer whose version differs
        from what the graph holds was changed in Python and is newer than the graph's copy."""
        if self._graph is None:
            return
        for layer in self._flat_layers:
            if layer._weights and self._pushed.get(id(layer)) != layer._version:
                for (i, w), (_, value, _) in zip(self._weight_slots[id(layer)], layer._weights):
                    self._graph.set_weight(i, w, value)
                self._pushed[id(layer)] = layer._version

    def _pull_weights(self):
        """Copy the graph's weights (trained, BN statistics) back into the layers."""
        self._graph_dirty = False
        if self._graph is None:
            return
        for layer in self._flat_layers:
            if not layer._weights:
                continue
            layer._weights = [(n, self._graph.get_weight(i, w), t) for (i, w), (n, _, t)
                              in zip(self._weight_slots[id(layer)], layer._weights)]
            layer._version += 1
            self._pushed[id(layer)] = layer._version
        self._changed_here()  # the layers now hold what this graph holds

    def _pull_layer(self, layer):
        """A layer is being read: bring every layer up to date if this graph trained."""
        if self._graph_dirty:
            self._pull_weights()

    def _sync(self):
        for layer in self._leaf_layers():
            layer._sync_from_owners()

    # -- weights ---------------------------------------------------------------------------
    def _leaf_layers(self):
        flat, _ = self._flatten()
        return [l for l, *_ in flat]

    def _trainable_map(self):
        flat, _ = self._flatten()
        return [(l, tr) for l, _, tr, _ in flat]

    @property
    def weights(self):
        self._sync()
        return [w for l in self._leaf_layers() for _, w, _ in l._weights]

    @property
    def trainable_weights(self):
        self._sync()
        return [w for l, tr in self._trainable_map() if tr for _, w, t in l._weights if t]

    @property
    def non_trainable_weights(self):
        self._sync()
        return [w for l, tr in self._trainable_map()
                for _, w, t in l._weights if not (tr and t)]

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]):
        self._sync()
        leaves = [l for l in self._leaf_layers() if l._weights]
        expected = sum(len(l._weights) for l in leaves)
        if len(weights) != expected:
            raise ValueError(f"model '{self.name}' has {expected} weight arrays, got {len(weights)}")
        k = 0
        for layer in leaves:
            n = len(layer._weights)
            layer.set_weights(weights[k:k + n])
            k += n

    def load_weights(self, path, by_name=None):
        """Keras .h5 or catdog .npz; by name when all names match, else by position."""
        from catdog import checkpoint

        checkpoint.load_weights(self, path, by_name=by_name)

    def save_weights(self, path):
        from catdog import checkpoint

        checkpoint.save_weights(self, path)

    # -- running ---------------------------------------------------------------------------
    def _check_x(self, x) -> np.ndarray:
        """x as the engine takes it: float32 (n, H, W, C), finite; a vector-input model's
        (n, C) goes in as (n, 1, 1, C) (see InputLayer.add_to_graph)."""
        x = np.asarray(x)
        if len(self.input_shape) == 1 and x.ndim == 4 and x.shape[1:] == (1, 1, self.input_shape[0]):
            x = x.reshape(len(x), -1)  # already in the engine's form
        if x.ndim == len(self.input_shape):
            x = x[None]
        _checks.input_shape(self, x.shape[1:], f"an array {x.shape}: images")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"inputs must be numeric, got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError("inputs contain NaN or Inf")
        if len(self.input_shape) == 1:
            x = x.reshape(len(x), 1, 1, self.input_shape[0])
        return x

    def predict_on_batch(self, x) -> np.ndarray:
        x = self._check_x(x)
        g = self._ensure_graph(x.shape[1:3])
        g.forward(x, False, _engine.KEEP_LAST)  # lean: only the output is kept
        return g.get_output(g.num_layers() - 1, x.shape[0])

    def predict(self, x, batch_size=32, verbose=0) -> np.ndarray:
        batch_size = _checks.batch_size(batch_size, "predict")
        _checks.data_given(x, "predict")
        _checks.dataset_images(self, x, "predict")
        if hasattr(x, "class_names") or (hasattr(x, "__iter__") and not isinstance(x, np.ndarray)
                                          and not isinstance(x, (list, tuple))):
            outs = [self.predict_on_batch(b[0] if isinstance(b, tuple) else b) for b in x]
            return np.concatenate(outs) if outs else _checks.empty_output(self)
        x = self._check_x(x)
        if len(x) == 0:  # Keras: shape (0, *output shape)
            return _checks.empty_output(self)
        return np.concatenate([self.predict_on_batch(x[i:i + batch_size])
                               for i in range(0, len(x), batch_size)])

    def layer_outputs(self, x, names: Sequence[str], training=False) -> Dict[str, np.ndarray]:
        """Outputs of the named (leaf) layers for a batch, e.g. to compare with Keras."""
        x = self._check_x(x)
        g = self._ensure_graph(x.shape[1:3])
        g.forward(x, bool(training))
        if training:
            self._mark_trained()  # BN moving statistics moved
        return {n: g.get_output(self._output_node(n), x.shape[0]) for n in names}

    def _output_node(self, name: str) -> int:
        """The graph node a (leaf) layer's output comes from: after its activation node when
        the layer became several (layers.core.GraphNodes)."""
        g = self._graph if self._graph is not None else self._ensure_graph()
        node = self._graph_outputs.get(name)
        return g.find_layer(name) if node is None else node

    def gradients(self, x, y=None, loss="binary_crossentropy_logits", training=False,
                  output_gradient=None) -> Dict[str, np.ndarray]:
        """Gradients w.r.t. every trainable weight, keyed 'layer/weight', of the loss on (x, y),
        or of sum(output * output_gradient) when output_gradient is given. training=False is
        the lab's inference-mode forward (BN moving statistics, no dropout)."""
        from catdog import losses

        x = self._check_x(x)
        g = self._ensure_graph(x.shape[1:3])
        if output_gradient is None:  # the loss as a training step computes it (head logits)
            g.loss_backward(x, np.ascontiguousarray(y, np.float32), losses.get(loss).kind,
                            bool(training))
        else:
            g.forward(x, bool(training))
            out = g.get_output(g.num_layers() - 1, x.shape[0])
            dy = np.ascontiguousarray(output_gradient, np.float32)
            g.backward(dy.reshape(out.shape))
        grads = {}
        for layer, tr in self._trainable_map():
            if not tr:
                continue
            for (i, w), (name, _, t) in zip(self._weight_slots[id(layer)], layer._weights):
                if t:
                    grads[f"{layer.name}/{name}"] = g.get_gradient(i, w)
        return grads

    # -- training (catdog/training.py) ------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        from catdog import training
        training.compile(self, optimizer, loss, metrics)

    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Keras fit (catdog/training.py). validation_split (arrays only): the last fraction
        of the samples, taken before any shuffling, validates at the end of each epoch, as
        in Keras; validation_data, when given, takes precedence."""
        from catdog import training

        if validation_split and validation_data is None:
            x, y, validation_data = _split_validation(x, y, validation_split)
        return training.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_data,
                            shuffle, initial_epoch)

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", return_dict=False,
                 callbacks=None):
        from catdog import training
        return training.evaluate(self, x, y, batch_size, verbose, return_dict, callbacks)

    def train_on_batch(self, x, y):
        from catdog import training
        return training.train_on_batch(self, x, y)

    def test_on_batch(self, x, y):
        from catdog import training
        return training.test_on_batch(self, x, y)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Keras 3's signature; positions, expand_nested and layer_range are not supported."""
        from catdog.summary import summary

        if positions is not None or expand_nested or layer_range is not None:
            raise NotImplementedError("catdog's summary() takes line_length, print_fn and "
                                      "show_trainable")
        summary(self, print_fn or print, line_length or 98, show_trainable)

    # -- whole-model files (catdog/saving/) ------------------------------------------------
    def save(self, filepath, overwrite=True, zipped=None):
        """Keras 3's `.keras` file: config, compile arguments and weights, written atomically
        (catdog/saving/keras_format.py). TensorFlow's keras.models.load_model reads it."""
        from pathlib import Path

        from catdog.saving import keras_format

        if not overwrite and Path(filepath).exists():
            raise FileExistsError(f"{filepath} exists and overwrite=False")
        if zipped is False:
            raise ValueError("model.save: catdog writes the zipped .keras file only")
        return keras_format.save_model(self, filepath)

    def export(self, filepath, format="onnx", verbose=None, **kwargs):
        """The inference graph for runtimes without Python: format="onnx" (needs the onnx
        package: pip install catdog[onnx]); see catdog/saving/onnx_export.py."""
        if format != "onnx":
            raise ValueError(f"model.export: catdog exports format='onnx' only, got {format!r}")
        from catdog.saving import onnx_export

        return onnx_export.export(self, filepath, **kwargs)

    def get_config(self):
        """Keras's model config (the "config" part of config.json)."""
        from catdog.saving import serialization

        return serialization.layer_config(self)["config"]

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from catdog.saving import serialization

        if custom_objects:
            raise ValueError("from_config: custom_objects are not supported")
        kind = "Sequential" if issubclass(cls, Sequential) else "Functional"
        module = "keras" if kind == "Sequential" else "keras.src.models.functional"
        return serialization.model_from_config(
            {"module": module, "class_name": kind, "config": config, "registered_name": None})

    def to_json(self, **kwargs):
        """The model's Keras 3 config as JSON; catdog.models.model_from_json reads it."""
        from catdog.saving import keras_format

        return keras_format.to_json(self, **kwargs)


class Sequential(Model):
    """A linear stack of layers, as keras.Sequential: Sequential([RandomFlip(...),
    RandomRotation(...)]) is the lab's data_augmentation block; Sequential([base_model,
    GlobalAveragePooling2D(), Dense(1, activation="sigmoid")]) the 2019 tutorial's model.

    It is a Model like any other once built: the engine graph, the trained weights and the
    layers' weights all belong to this object (there is no hidden inner model). It is built
    as soon as its input shape is known: a first element catdog.Input(shape) or a model (its
    input shape, as Keras takes base_model's), else on the first call, fit, evaluate or
    predict (the data's shape). `layers` excludes the input layer, as in Keras."""

    def __init__(self, layers: Optional[Sequence[Layer]] = None, name: Optional[str] = None):
        Layer.__init__(self, name=name)
        self._init_state()
        self._stack: List[Layer] = []
        self._declared_shape = None  # from a leading catdog.Input(shape)
        self.layers = self._stack
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, KerasTensor) and isinstance(layer.layer, InputLayer):
            if self._stack or self._declared_shape is not None:
                raise ValueError(f"Sequential '{self.name}': catdog.Input(...) can only come first")
            self._declared_shape = tuple(layer.shape)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential '{self.name}' takes layers, got {type(layer).__name__}")
        shape_arg = getattr(layer, "_input_shape_arg", None)
        if shape_arg is not None and not self._stack and self._declared_shape is None:
            self._declared_shape = shape_arg  # Keras: an InputLayer of the first layer's input_shape
        if isinstance(layer, InputLayer):
            if self._stack or self._declared_shape is not None:
                raise ValueError(f"Sequential '{self.name}': an InputLayer can only come first")
            self._declared_shape = tuple(layer.output_shape)
            return
        self._stack.append(layer)
        shape = self.input_shape if self._nodes else self._known_input_shape()
        if shape is not None:
            self._build(shape)

    def _known_input_shape(self):
        if self._declared_shape is not None:
            return self._declared_shape
        first = self._stack[0] if self._stack else None
        if isinstance(first, Model) and first.input_shape is not None:
            return tuple(first.input_shape)
        return None

    def _build(self, input_shape):
        """Call every layer in turn on catdog.Input(input_shape): the model's structure."""
        if not self._stack:
            raise ValueError(f"Sequential '{self.name}' has no layers")
        inp = Input(tuple(input_shape), name=f"{self.name}_input")
        x = inp
        for layer in self._stack:
            x = layer(x)
        self._set_structure(inp, x)

    def _require_built(self, input_shape=None):
        if self._nodes:
            return
        shape = self._known_input_shape() or (tuple(input_shape) if input_shape else None)
        if shape is None:
            raise ValueError(f"Sequential '{self.name}' has no input shape yet: start it with "
                             "catdog.Input(shape), call it on a tensor or an array, or fit it")
        self._build(shape)

    def _build_for_data(self, x):
        """Before fit/evaluate/predict: build from the data (arrays or an image dataset)."""
        if self._nodes:
            return
        if hasattr(x, "image_size"):
            self._require_built(tuple(x.image_size) + (3,))
        elif isinstance(x, np.ndarray) and x.ndim > 1:
            self._require_built(x.shape[1:])
        else:
            self._require_built()

    def _call_eager(self, x, training=None):
        if self._stack and all(_is_augmentation(l) for l in self._stack):
            # a preprocessing stack (the tutorial's augmentation grid): runs at any image size,
            # so it is not built for this one
            from catdog._array import as_array
            from catdog.layers.preprocessing import apply_layers

            if training is False:
                return as_array(np.array(x, dtype=np.float32))
            return as_array(apply_layers(self._stack, x, training=True))
        return Model._call_eager(self, x, training)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._build_for_data(x)
        return Model.fit(self, x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._build_for_data(x)
        return Model.evaluate(self, x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._build_for_data(np.asarray(x) if isinstance(x, (list, tuple)) else x)
        return Model.predict(self, x, *args, **kwargs)

    def predict_on_batch(self, x):
        self._build_for_data(np.asarray(x))
        return Model.predict_on_batch(self, x)

    def train_on_batch(self, x, y):
        self._build_for_data(np.asarray(x))
        return Model.train_on_batch(self, x, y)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """A model from a Keras 3 `.keras` file, Keras's or catdog's (catdog/saving/)."""
    from catdog.saving import keras_format

    return keras_format.load_model(filepath, custom_objects, compile, safe_mode)


def model_from_json(json_string, custom_objects=None):
    """A model (fresh weights) from `Model.to_json()` or Keras's own to_json."""
    from catdog.saving import keras_format

    if custom_objects:
        raise ValueError("model_from_json: custom_objects are not supported")
    return keras_format.from_json(json_string)
