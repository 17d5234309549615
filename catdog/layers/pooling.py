"""Keras pooling layers run by the engine (csrc/nn/pooling.c): MaxPooling2D, AveragePooling2D."""
from __future__ import annotations

from catdog.layers.core import Layer, _conv_out, _pads, _pair


class _Pooling2D(Layer):
    engine_kind_name = ""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 name=None):
        super().__init__(name=name)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{type(self).__name__}: only data_format='channels_last' is supported")
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        self.pool_size = _pair(pool_size)
        self.strides = _pair(strides) if strides is not None else self.pool_size
        self.padding = padding

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} '{self.name}' needs (H, W, C) inputs, got "
                             f"{input_shape}")
        super().build(input_shape)

    def _set_geometry(self, input_shape):
        self.pads = _pads(self.padding, input_shape, self.pool_size, self.strides)
        super()._set_geometry(input_shape)

    def compute_output_shape(self, s):
        t, b, l, r = self.pads
        return (_conv_out(s[0], t, b, self.pool_size[0], self.strides[0]),
                _conv_out(s[1], l, r, self.pool_size[1], self.strides[1]), s[2])

    def add_to_graph(self, graph, ids):
        return graph.add_layer(self.engine_kind_name, self.name, ids, pool=self.pool_size,
                               strides=self.strides, pad=self.pads)


class MaxPooling2D(_Pooling2D):
    """Keras MaxPooling2D: max over each pool_size window (padding never wins)."""

    engine_kind_name = "MaxPooling2D"


class AveragePooling2D(_Pooling2D):
    """Keras AveragePooling2D: mean over each window; "same" padding is left out of the mean."""

    engine_kind_name = "AveragePooling2D"
