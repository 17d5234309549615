"""Functional models on the C engine: catdog.Input, catdog.Model, catdog.Sequential.

A Model is a chain of layers (nested models allowed, as in the lab). Running it compiles the
flattened layer chain into one engine graph; layers keep their weights as NumPy arrays, pushed
into the graph before a run and pulled back after training."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from catdog import _engine
from catdog.layers.core import InputLayer, Layer

MODE_INHERIT, MODE_INFERENCE, MODE_TRAINING = (_engine.MODE_INHERIT, _engine.MODE_INFERENCE,
                                              _engine.MODE_TRAINING)


class KerasTensor:
    """A symbolic tensor: the output of `layer` called on `inputs` (shape without batch)."""

    def __init__(self, shape, layer, inputs, training=None):
        self.shape = tuple(shape)
        self.layer = layer
        self.inputs = inputs
        self.training = training

    def __repr__(self):
        return f"<KerasTensor shape=(None, {', '.join(map(str, self.shape))}) from {self.layer.name}>"


def Input(shape, name=None) -> KerasTensor:
    layer = InputLayer(shape, name=name)
    return KerasTensor(layer.output_shape, layer, [], None)


def _is_augmentation(layer) -> bool:
    return getattr(layer, "is_augmentation", False)


class Model(Layer):
    def __init__(self, inputs: KerasTensor, outputs: KerasTensor, name: Optional[str] = None):
        super().__init__(name=name or None)
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
        self._input = inputs
        self._output = outputs
        self._nodes = self._topological(outputs)
        if self._nodes[0] is not inputs:
            raise ValueError("the model's output does not depend on its input")
        self.layers: List[Layer] = [t.layer for t in self._nodes]
        self.input_shape = inputs.shape
        self.output_shape = outputs.shape
        self._graph = None
        self._graph_index: Dict[int, int] = {}
        self._pushed: Dict[int, int] = {}
        self._graph_dirty = False  # the graph holds newer weights than the layers
        self._compiled = None
        self.history = None
        self.stop_training = False

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
        if not isinstance(inputs, KerasTensor):
            raise TypeError(f"model '{self.name}' was called on {type(inputs).__name__}; use "
                            "model.predict(x) for arrays")
        if tuple(inputs.shape) != tuple(self.input_shape):
            raise ValueError(f"model '{self.name}' expects inputs of shape {self.input_shape}, "
                             f"got {inputs.shape}")
        return KerasTensor(self.output_shape, self, [inputs], training)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
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
                if isinstance(layer, Sequential):
                    pos[id(t)] = expand(layer._as_model(), ins[0], tr, m)
                elif isinstance(layer, Model):
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
    def _ensure_graph(self):
        flat, augment = self._flatten()
        self._augment = augment
        if self._graph is None:
            g = _engine.Graph()
            index = {}
            for i, (layer, ins, _, _) in enumerate(flat):
                try:
                    index[id(layer)] = layer.add_to_graph(g, ins)
                except NotImplementedError as e:
                    raise ValueError(str(e)) from None
                if index[id(layer)] != i:
                    raise RuntimeError("internal: graph index mismatch")
            self._graph, self._graph_index, self._pushed = g, index, {}
            self._flat_layers = [l for l, *_ in flat]
            from catdog import random as _random

            g.set_seed(_random.get_seed())
        g = self._graph
        for layer, *_ in flat:  # weights another model trained since: fetch them first
            layer._sync_from_owners()
            if self not in layer._owners:
                layer._owners.append(self)
        for i, (layer, _, tr, mode) in enumerate(flat):
            g.set_trainable(i, tr)
            g.set_mode(i, mode)
            if self._pushed.get(id(layer)) != layer._version:
                for w, (_, value, _) in enumerate(layer._weights):
                    g.set_weight(i, w, value)
                self._pushed[id(layer)] = layer._version
        return g

    def _pull_weights(self):
        """Copy the graph's weights (trained, BN statistics) back into the layers."""
        self._graph_dirty = False
        if self._graph is None:
            return
        for layer in self._flat_layers:
            if not layer._weights:
                continue
            i = self._graph_index[id(layer)]
            layer._weights = [(n, self._graph.get_weight(i, w), t)
                              for w, (n, _, t) in enumerate(layer._weights)]
            layer._version += 1
            self._pushed[id(layer)] = layer._version

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
        x = np.asarray(x)
        if x.ndim == len(self.input_shape):
            x = x[None]
        if x.shape[1:] != tuple(self.input_shape):
            raise ValueError(f"model '{self.name}' expects inputs of shape (batch, "
                             f"{', '.join(map(str, self.input_shape))}), got {x.shape}")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"inputs must be numeric, got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError("inputs contain NaN or Inf")
        return x

    def predict_on_batch(self, x) -> np.ndarray:
        x = self._check_x(x)
        g = self._ensure_graph()
        g.forward(x, False, _engine.KEEP_LAST)  # lean: only the output is kept
        return g.get_output(g.num_layers() - 1, x.shape[0])

    def predict(self, x, batch_size=32, verbose=0) -> np.ndarray:
        if hasattr(x, "class_names") or (hasattr(x, "__iter__") and not isinstance(x, np.ndarray)
                                          and not isinstance(x, (list, tuple))):
            return np.concatenate([self.predict_on_batch(b[0] if isinstance(b, tuple) else b)
                                   for b in x])
        x = self._check_x(x)
        return np.concatenate([self.predict_on_batch(x[i:i + batch_size])
                               for i in range(0, len(x), batch_size)])

    def layer_outputs(self, x, names: Sequence[str], training=False) -> Dict[str, np.ndarray]:
        """Outputs of the named (leaf) layers for a batch, e.g. to compare with Keras."""
        x = self._check_x(x)
        g = self._ensure_graph()
        g.forward(x, bool(training))
        if training:
            self._graph_dirty = True  # BN moving statistics moved
        return {n: g.get_output(g.find_layer(n), x.shape[0]) for n in names}

    def gradients(self, x, y=None, loss="binary_crossentropy_logits", training=False,
                  output_gradient=None) -> Dict[str, np.ndarray]:
        """Gradients w.r.t. every trainable weight, keyed 'layer/weight', of the loss on (x, y),
        or of sum(output * output_gradient) when output_gradient is given. training=False is
        the lab's inference-mode forward (BN moving statistics, no dropout)."""
        from catdog import losses

        x = self._check_x(x)
        g = self._ensure_graph()
        g.forward(x, bool(training))
        out = g.get_output(g.num_layers() - 1, x.shape[0])
        if output_gradient is None:
            kind = losses.get(loss).kind
            _, dy = _engine.loss(kind, out.reshape(len(x), -1),
                                 np.ascontiguousarray(y, np.float32).reshape(-1))
        else:
            dy = np.ascontiguousarray(output_gradient, np.float32)
        g.backward(dy.reshape(out.shape))
        grads = {}
        for layer, tr in self._trainable_map():
            if not tr:
                continue
            i = self._graph_index[id(layer)]
            for w, (name, _, t) in enumerate(layer._weights):
                if t:
                    grads[f"{layer.name}/{name}"] = g.get_gradient(i, w)
        return grads

    # -- training (catdog/training.py) ------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        from catdog import training
        training.compile(self, optimizer, loss, metrics)

    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_data=None, shuffle=True, initial_epoch=0):
        from catdog import training
        return training.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_data,
                            shuffle, initial_epoch)

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", return_dict=False):
        from catdog import training
        return training.evaluate(self, x, y, batch_size, verbose, return_dict)

    def train_on_batch(self, x, y):
        from catdog import training
        return training.train_on_batch(self, x, y)

    def test_on_batch(self, x, y):
        from catdog import training
        return training.test_on_batch(self, x, y)

    def summary(self, print_fn=print):
        from catdog.summary import summary

        summary(self, print_fn)


class Sequential(Model):
    """A linear stack of layers. Sequential([RandomFlip(...), RandomRotation(...)]) is the
    lab's data_augmentation block."""

    def __init__(self, layers: Optional[Sequence[Layer]] = None, name: Optional[str] = None):
        Layer.__init__(self, name=name)
        self._stack: List[Layer] = list(layers or [])
        self._model = None
        self.layers = self._stack
        self.input_shape = self.output_shape = None
        self._graph = None
        self._compiled = None

    def add(self, layer: Layer):
        self._stack.append(layer)
        self._model = None

    def _as_model(self, input_shape=None):
        if self._model is None:
            shape = input_shape or self.input_shape
            if shape is None:
                first = self._stack[0] if self._stack else None
                if isinstance(first, InputLayer):
                    shape = first.output_shape
                else:
                    raise ValueError(f"Sequential '{self.name}' has no input shape yet: call it "
                                     "on catdog.Input(shape) first")
            inp = Input(shape)
            x = inp
            for layer in self._stack:
                if isinstance(layer, InputLayer):
                    continue
                x = layer(x)
            self._model = Model(inp, x, name=f"{self.name}_graph")
        return self._model

    def __call__(self, inputs, training=None):
        if not isinstance(inputs, KerasTensor):
            if self._stack and all(hasattr(l, "_cd_op") for l in self._stack):
                # a preprocessing stack on arrays (the lab shows augmented samples): run it
                from catdog.layers.preprocessing import apply_layers

                return apply_layers(self._stack, inputs,
                                    training=True if training is None else bool(training))
            raise TypeError(f"Sequential '{self.name}' was called on {type(inputs).__name__}; "
                            "use .predict(x) for arrays")
        if self.input_shape is None:
            self.input_shape = tuple(inputs.shape)
        m = self._as_model(self.input_shape)
        self.output_shape = m.output_shape
        return KerasTensor(self.output_shape, self, [inputs], training)

    def _flatten(self):
        return self._as_model()._flatten()

    def _ensure_graph(self):
        return self._as_model()._ensure_graph()
