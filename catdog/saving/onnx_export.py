"""`model.export("x.onnx", format="onnx")`: the inference graph as an ONNX model.

What the file holds (opset 17, IR version 8, so ONNX Runtime >= 1.10 and OpenVINO read it):

* one input `inputs`, NHWC float32 as catdog's predict takes it, shape (batch, H, W, C)
  with a symbolic batch axis; it is transposed once to NCHW, ONNX's convolution layout;
* one output `output`: (batch, units) after a Dense head, or NHWC (batch, H', W', C')
  for a model ending in an image tensor (transposed back);
* the layers in catdog's inference semantics: augmentation layers (RandomFlip, ...) and
  Dropout are left out (identity), BatchNormalization is ONNX BatchNormalization on the
  moving statistics (runtimes fold it into the convolution), ReLU(max_value) is Clip,
  Keras's asymmetric "same" padding and ZeroPadding2D are explicit pads, Dense is
  MatMul + Add (+ Sigmoid / Softmax), GlobalAveragePooling2D is GlobalAveragePool + Flatten.

Weights are the model's current ones (trained weights pulled from the engine first). Kernels
change layout: Conv2D (kh, kw, cin, cout) -> (cout, cin, kh, kw); DepthwiseConv2D
(kh, kw, c, 1) -> (c, 1, kh, kw) with group = c. The file is written atomically.
"""
from __future__ import annotations

import re

import numpy as np

OPSET = 17
IR_VERSION = 8


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("model.export(format='onnx') needs the onnx package: "
                          "pip install catdog[onnx]  (or: pip install onnx)") from None
    return onnx, helper, numpy_helper


class _Graph:
    def __init__(self, helper, numpy_helper):
        self.h, self.nh = helper, numpy_helper
        self.nodes, self.inits, self.used = [], [], set()

    def name(self, base):
        base = re.sub(r"[^A-Za-z0-9_./-]", "_", base) or "t"
        n, k = base, 1
        while n in self.used:
            n, k = f"{base}_{k}", k + 1
        self.used.add(n)
        return n

    def const(self, base, array):
        n = self.name(base)
        self.inits.append(self.nh.from_array(np.ascontiguousarray(array), n))
        return n

    def op(self, op_type, inputs, base, **attrs):
        out = self.name(base)
        self.nodes.append(self.h.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _weights(layer):
    return {n: np.asarray(w, np.float32) for n, w, _ in layer._weights}


def _pads(t, b, l, r):
    return [int(t), int(l), int(b), int(r)]  # ONNX: begins of H, W then ends


def _activation(g, x, act, name, channel_axis):
    """Keras activation `act` (catdog.activations' names) on x as ONNX ops: the layer's own
    activation= (Conv2D, DepthwiseConv2D, Dense) or an Activation layer."""
    if act in (None, "linear"):
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}
    if act in simple:
        return g.op(simple[act], [x], name)
    if act == "relu6":
        return g.op("Clip", [x, g.const(name + "/min", np.float32(0.0)),
                             g.const(name + "/max", np.float32(6.0))], name)
    if act == "softmax":
        return g.op("Softmax", [x], name, axis=channel_axis)
    if act in ("silu", "swish"):
        return g.op("Mul", [x, g.op("Sigmoid", [x], name + "/sigmoid")], name)
    if act == "hard_sigmoid":  # relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1)
        return g.op("HardSigmoid", [x], name, alpha=1.0 / 6.0, beta=0.5)
    if act in ("hard_silu", "hard_swish"):
        return g.op("Mul", [x, g.op("HardSigmoid", [x], name + "/gate", alpha=1.0 / 6.0,
                                    beta=0.5)], name)
    if act == "gelu":  # exact: x / 2 * (1 + erf(x / sqrt 2))
        e = g.op("Erf", [g.op("Mul", [x, g.const(name + "/rsqrt2", np.float32(0.5 ** 0.5))],
                              name + "/scaled")], name + "/erf")
        half = g.op("Mul", [x, g.const(name + "/half", np.float32(0.5))], name + "/half_x")
        return g.op("Add", [half, g.op("Mul", [half, e], name + "/half_x_erf")], name)
    if act == "elu":
        return g.op("Elu", [x], name, alpha=1.0)
    if act == "selu":
        return g.op("Selu", [x], name, alpha=1.6732632423543772, gamma=1.0507009873554805)
    raise ValueError(f"model.export: activation '{act}' of '{name}' has no ONNX form in catdog")


def _emit(g, layer, ins):
    """ONNX nodes for one catdog layer, activation= included."""
    from catdog import layers as L

    y = _emit_layer(g, layer, ins)
    if type(layer) in (L.Conv2D, L.DepthwiseConv2D) and layer.activation not in (None, "linear"):
        # the Conv node keeps the layer's name for its output; the activation follows it
        return _activation(g, y, layer.activation, layer.name + "/activation", 1)
    return y


def _emit_layer(g, layer, ins):
    """ONNX nodes for one catdog layer on NCHW (or (N, C)) inputs; returns the output name."""
    from catdog import layers as L
    from catdog.layers.preprocessing import Rescaling

    kind, name, w = type(layer), layer.name, _weights(layer)
    x = ins[0]
    if isinstance(layer, Rescaling) or kind is L.core.Rescaling:
        y = g.op("Mul", [x, g.const(name + "/scale", np.float32(layer.scale))], name + "/mul")
        return g.op("Add", [y, g.const(name + "/offset", np.float32(layer.offset))], name)
    if kind is L.DepthwiseConv2D:
        k = w["depthwise_kernel"]  # (kh, kw, c, m) -> (c * m, 1, kh, kw), channel c * m + j
        wt = g.const(name + "/kernel", k.transpose(2, 3, 0, 1).reshape(-1, 1, *k.shape[:2]))
        args = [x, wt] + ([g.const(name + "/bias", w["bias"])] if layer.use_bias else [])
        return g.op("Conv", args, name, kernel_shape=list(layer.kernel_size),
                    strides=list(layer.strides), pads=_pads(*layer.pads), group=int(k.shape[2]),
                    dilations=list(layer.dilation_rate))
    if kind is L.Conv2D:
        wt = g.const(name + "/kernel", w["kernel"].transpose(3, 2, 0, 1))
        args = [x, wt] + ([g.const(name + "/bias", w["bias"])] if layer.use_bias else [])
        return g.op("Conv", args, name, kernel_shape=list(layer.kernel_size),
                    strides=list(layer.strides), pads=_pads(*layer.pads),
                    dilations=list(layer.dilation_rate), group=int(layer.groups))
    if kind is L.BatchNormalization:
        c = w["moving_mean"].shape  # center=False / scale=False: beta 0 / gamma 1
        w = {"gamma": np.ones(c, np.float32), "beta": np.zeros(c, np.float32), **w}
        args = [x] + [g.const(f"{name}/{k}", w[k])
                      for k in ("gamma", "beta", "moving_mean", "moving_variance")]
        return g.op("BatchNormalization", args, name, epsilon=float(layer.epsilon))
    if kind is L.ReLU:
        if layer.max_value is None:
            return g.op("Relu", [x], name)
        return g.op("Clip", [x, g.const(name + "/min", np.float32(0.0)),
                             g.const(name + "/max", np.float32(layer.max_value))], name)
    if kind is L.ZeroPadding2D:
        (t, b), (l, r) = layer.padding
        pads = np.array([0, 0, t, l, 0, 0, b, r], np.int64)
        return g.op("Pad", [x, g.const(name + "/pads", pads)], name, mode="constant")
    if kind is L.Add:
        return g.op("Add", list(ins), name)
    if kind is L.GlobalAveragePooling2D:
        return g.op("Flatten", [g.op("GlobalAveragePool", [x], name + "/pool")], name, axis=1)
    if kind is L.Dropout:
        return x  # inference: identity
    if kind is L.Dense:
        y = g.op("MatMul", [x, g.const(name + "/kernel", w["kernel"])],
                 name + ("/matmul" if layer.use_bias or layer.activation else ""))
        if layer.use_bias:
            y = g.op("Add", [y, g.const(name + "/bias", w["bias"])],
                     name + ("/bias_add" if layer.activation else ""))
        return _activation(g, y, layer.activation, name, -1)
    if kind is L.Activation:
        return _activation(g, x, layer.activation, name, 1 if len(layer.input_shape) == 3 else -1)
    if kind in (L.MaxPooling2D, L.AveragePooling2D):
        attrs = dict(kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                     pads=_pads(*layer.pads))
        if kind is L.AveragePooling2D:  # Keras leaves "same" padding out of the mean
            return g.op("AveragePool", [x], name, count_include_pad=0, **attrs)
        return g.op("MaxPool", [x], name, **attrs)
    from catdog.layers.preprocessing import Normalization, Resizing

    if kind is Normalization:  # per channel: (x - mean) / max(sqrt(var), 1e-7), or inverse
        mean, var = (layer._constants if layer.input_mean is not None
                     else (w["mean"], w["variance"]))
        denom = np.maximum(np.sqrt(np.asarray(var, np.float32)), np.float32(1e-7))
        shape = (1, -1, 1, 1) if len(layer.input_shape) == 3 else (-1,)
        m = g.const(name + "/mean", np.asarray(mean, np.float32).reshape(shape))
        d = g.const(name + "/denom", denom.reshape(shape))
        if layer.invert:
            return g.op("Add", [g.op("Mul", [x, d], name + "/scale"), m], name)
        return g.op("Div", [g.op("Sub", [x, m], name + "/center"), d], name)
    if kind is Resizing:  # crop (Slice) or pad (Pad), then Resize as tf.image.resize
        h, wd, _ = layer.input_shape
        y0, x0, rh, rw = layer.region(h, wd)
        if layer.crop_to_aspect_ratio:
            x = g.op("Slice", [x, g.const(name + "/starts", np.array([y0, x0], np.int64)),
                               g.const(name + "/ends", np.array([y0 + rh, x0 + rw], np.int64)),
                               g.const(name + "/axes", np.array([2, 3], np.int64))], name + "/crop")
        elif y0 < 0 or x0 < 0:
            pads = np.array([0, 0, -y0, -x0, 0, 0, -y0, -x0], np.int64)
            x = g.op("Pad", [x, g.const(name + "/pads", pads),
                             g.const(name + "/fill", np.float32(layer.fill_value))],
                     name + "/pad", mode="constant")
        batch_channels = g.op("Slice", [g.op("Shape", [x], name + "/shape"),
                                        g.const(name + "/s0", np.array([0], np.int64)),
                                        g.const(name + "/s2", np.array([2], np.int64))],
                              name + "/nc")
        sizes = g.op("Concat", [batch_channels, g.const(name + "/hw", np.array(
            [layer.height, layer.width], np.int64))], name + "/sizes", axis=0)
        attrs = (dict(mode="linear", coordinate_transformation_mode="half_pixel")
                 if layer.interpolation == "bilinear" else
                 dict(mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn",
                      nearest_mode="floor"))
        return g.op("Resize", [x, "", "", sizes], name, **attrs)
    raise ValueError(f"model.export: layer '{name}' ({kind.__name__}) has no ONNX form in "
                     "catdog yet (catdog/saving/onnx_export.py)")


def to_onnx(model):
    """The onnx.ModelProto of `model`'s inference graph (see the module doc)."""
    onnx, helper, numpy_helper = _onnx()
    from catdog.layers.core import InputLayer

    model._require_built()
    model._sync()
    flat, _augment = model._flatten()  # augmentation layers: identity at inference
    if len(model.input_shape) != 3:
        raise ValueError(f"model.export: catdog exports image models (input (H, W, C)), "
                         f"got input shape {model.input_shape}")
    g = _Graph(helper, numpy_helper)
    inp = g.name("inputs")
    h, wd, c = model.input_shape
    outs = []
    for i, (layer, positions, _, _) in enumerate(flat):
        if isinstance(layer, InputLayer):
            outs.append(g.op("Transpose", [inp], "to_nchw", perm=[0, 3, 1, 2]))
            continue
        outs.append(_emit(g, layer, [outs[p] for p in positions]))
    last = outs[-1]
    out_shape = model.output_shape
    if len(out_shape) == 3:
        last = g.op("Transpose", [last], "to_nhwc", perm=[0, 2, 3, 1])
    out = g.op("Identity", [last], "output")
    graph = helper.make_graph(
        g.nodes, model.name or "catdog",
        [helper.make_tensor_value_info(inp, onnx.TensorProto.FLOAT, ["batch", h, wd, c])],
        [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, ["batch", *out_shape])],
        initializer=g.inits)
    proto = helper.make_model(graph, producer_name="catdog",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def export(model, filepath, **kwargs):
    """Write `model`'s inference graph to `filepath` (atomically); returns the path."""
    from catdog import h5io

    if kwargs:
        raise TypeError(f"model.export: unexpected arguments {', '.join(sorted(kwargs))}")
    proto = to_onnx(model)
    data = proto.SerializeToString()

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    return h5io._atomic_write(filepath, write)
