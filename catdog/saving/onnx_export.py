"""`model.export("x.onnx", format="onnx")`: the inference graph as an ONNX model.

What the file holds (opset 17, IR version 8, so ONNX Runtime >= 1.10 and OpenVINO read it):

* one input `inputs`, NHWC float32 as catdog's predict takes it, shape (batch, H, W, C)
  with a symbolic batch axis; it is transposed once to NCHW, ONNX's convolution layout;
* one output `output`: (batch, units) after a Dense head, or NHWC (batch, H', W', C')
  for a model ending in an image tensor (transposed back);
* the layers in catdog's inference semantics: augmentation layers (RandomFlip, ...) and
  Dropout (any noise_shape) are left out (identity), BatchNormalization is ONNX
  BatchNormalization on the moving statistics (runtimes fold it into the convolution),
  ReLU(max_value) is Clip, Keras's asymmetric "same" padding and ZeroPadding2D are explicit
  pads, Dense is MatMul + Add, SeparableConv2D a grouped Conv then a 1x1 Conv, the global
  poolings GlobalAveragePool / GlobalMaxPool (+ Flatten without keepdims);
* activations (Activation, activation= on Conv2D / DepthwiseConv2D / SeparableConv2D / Dense)
  as keras/src/activations/activations.py defines them, in opset-17 operators: gelu is the
  exact erf form (Keras's default approximate=False), hard_sigmoid HardSigmoid(1/6, 1/2),
  hard_silu HardSwish, silu x * Sigmoid(x), softmax over the channels;
* Flatten and Reshape read the values in NHWC order, as catdog and Keras do: an NCHW tensor
  is transposed back to NHWC before it is flattened;
* Concatenate on any axis (an image's H, W, C are NCHW's 2, 3, 1); the merging layers, of
  any number of inputs (Add, Subtract, Multiply, Maximum, Minimum, Average), and tensor
  arithmetic (x + 3.0, x * y, -x: catdog/layers/operations.py) as elementwise operators; a
  per-channel gate broadcasts as (N, C, 1, 1);
* Conv2D's dilation and groups, DepthwiseConv2D's and SeparableConv2D's depth multiplier and
  dilation; BatchNormalization without center / scale (beta 0 / gamma 1); Normalization as
  (x - mean) / max(sqrt(variance), 1e-7) (or inverted); Resizing as tf.image.resize (a Slice
  or Pad for crop_to_aspect_ratio / pad_to_aspect_ratio, then Resize). RandomContrast and
  RandomBrightness are augmentation: left out.

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


def _pads(pads):
    """A layer's (top, bottom, left, right) as ONNX attributes: pads lists the begins of H, W
    then the ends; a free input size's "same" (None: each size its own) is ONNX's
    auto_pad SAME_UPPER, TF's rule (the extra pixel after)."""
    if None in pads:
        return {"auto_pad": "SAME_UPPER"}
    t, b, l, r = pads
    return {"pads": [int(t), int(l), int(b), int(r)]}


# Keras's selu constants (keras/src/activations/activations.py), as float32 like the engine's
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _activation(g, name, x, act, image):
    """Keras activation `act` (catdog's name: None or a key of catdog.activations._CODES,
    swish / hard_swish spelled silu / hard_silu too) on x: NCHW when `image`, else (N, C).
    Each is the formula of keras/src/activations/activations.py in opset-17 operators."""
    act = {"swish": "silu", "hard_swish": "hard_silu"}.get(act, act)
    if act in (None, "linear"):
        return x
    if act == "relu":
        return g.op("Relu", [x], name)
    if act == "relu6":
        return g.op("Clip", [x, g.const(name + "/min", np.float32(0.0)),
                             g.const(name + "/max", np.float32(6.0))], name)
    if act == "sigmoid":
        return g.op("Sigmoid", [x], name)
    if act == "tanh":
        return g.op("Tanh", [x], name)
    if act == "softmax":  # Keras: over the last axis, the channels: NCHW's axis 1
        return g.op("Softmax", [x], name, axis=1 if image else -1)
    if act == "silu":  # x * sigmoid(x)
        return g.op("Mul", [x, g.op("Sigmoid", [x], name + "/sigmoid")], name)
    if act == "hard_sigmoid":  # relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1)
        return g.op("HardSigmoid", [x], name, alpha=1.0 / 6.0, beta=0.5)
    if act == "hard_silu":  # x * relu6(x + 3) / 6
        return g.op("HardSwish", [x], name)
    if act == "gelu":  # Keras's default approximate=False: x / 2 * (1 + erf(x / sqrt 2))
        e = g.op("Erf", [g.op("Mul", [x, g.const(name + "/rsqrt2", np.float32(np.sqrt(0.5)))],
                              name + "/scaled")], name + "/erf")
        one = g.op("Add", [e, g.const(name + "/one", np.float32(1.0))], name + "/one_plus")
        half = g.op("Mul", [x, g.const(name + "/half", np.float32(0.5))], name + "/half_x")
        return g.op("Mul", [half, one], name)
    if act == "elu":
        return g.op("Elu", [x], name, alpha=1.0)
    if act == "selu":
        return g.op("Selu", [x], name, alpha=_SELU_ALPHA, gamma=_SELU_SCALE)
    if act == "softplus":
        return g.op("Softplus", [x], name)
    raise ValueError(f"model.export: layer '{name}': activation {act!r} has no ONNX form in "
                     "catdog yet")


def _to_nhwc_flat(g, name, x, image):
    """x as (N, features) in NHWC order, as catdog's (and Keras's) Flatten reads memory."""
    if image:
        x = g.op("Transpose", [x], name + "/to_nhwc", perm=[0, 2, 3, 1])
    return g.op("Flatten", [x], name, axis=1)


def _channel_broadcast(g, name, x, image, other_image):
    """A (N, C) vector against an NCHW image: (N, C, 1, 1), one value per channel."""
    if image or not other_image:
        return x
    return g.op("Unsqueeze", [x, g.const(name + "/axes", np.array([2, 3], np.int64))], name)


def _f32(v):
    return float(np.float32(v))


def _resize_box(layer, h, w):
    """(y0, x0, rh, rw): the region of the (h, w) input the resize reads, as csrc/nn/resizing.c
    (crop_to_aspect_ratio: cd_crop_box's centred window; pad_to_aspect_ratio: y0, x0 <= 0,
    padded with fill_value), in Keras's float32 arithmetic truncated to int."""
    th, tw = layer.height, layer.width
    if layer.crop_to_aspect_ratio:
        ch = min(max(int(_f32(_f32(w * th) / _f32(tw))), 1), h)
        cw = min(max(int(_f32(_f32(h * tw) / _f32(th))), 1), w)
        return int(_f32(h - ch) / 2), int(_f32(w - cw) / 2), ch, cw
    if layer.pad_to_aspect_ratio:
        ph = max(int(_f32(_f32(w * th) / _f32(tw))), h)
        pw = max(int(_f32(_f32(h * tw) / _f32(th))), w)
        top, left = int(_f32(ph - h) / 2), int(_f32(pw - w) / 2)
        return -top, -left, h + 2 * top, w + 2 * left
    return 0, 0, h, w


def _resizing(g, layer, x):
    """Keras's Resizing (tf.image.resize, half-pixel centres, no antialiasing) on NCHW x: the
    crop (Slice) or padding (Pad) of the aspect ratio, then ONNX Resize to (height, width):
    bilinear is mode linear with half_pixel coordinates (ONNX clamps to the edge as TF's
    lower/upper indices do), nearest is floor((o + 0.5) * in / out), ONNX's
    tf_half_pixel_for_nn with nearest_mode floor."""
    name = layer.name
    h, w = layer.input_shape[:2]
    if None in (h, w) and (layer.crop_to_aspect_ratio or layer.pad_to_aspect_ratio):
        raise ValueError(f"model.export: Resizing '{name}' crops or pads to an aspect ratio on a "
                         "free input size; export a model built with a fixed input_shape")
    y0, x0, rh, rw = _resize_box(layer, h, w)
    if y0 < 0 or x0 < 0:
        pads = np.array([0, 0, -y0, -x0, 0, 0, -y0, -x0], np.int64)
        x = g.op("Pad", [x, g.const(name + "/pads", pads),
                         g.const(name + "/fill", np.float32(layer.fill_value))], name + "/pad",
                 mode="constant")
    elif (y0, x0, rh, rw) != (0, 0, h, w):
        x = g.op("Slice", [x, g.const(name + "/starts", np.array([y0, x0], np.int64)),
                           g.const(name + "/ends", np.array([y0 + rh, x0 + rw], np.int64)),
                           g.const(name + "/axes", np.array([2, 3], np.int64))], name + "/crop")
    n_c = g.op("Slice", [g.op("Shape", [x], name + "/shape"),
                         g.const(name + "/nc_start", np.array([0], np.int64)),
                         g.const(name + "/nc_end", np.array([2], np.int64))], name + "/n_c")
    sizes = g.op("Concat", [n_c, g.const(name + "/hw", np.array([layer.height, layer.width],
                                                                 np.int64))],
                 name + "/sizes", axis=0)
    empty = g.const(name + "/empty", np.zeros(0, np.float32))  # no roi, no scales
    if layer.interpolation == "nearest":
        return g.op("Resize", [x, empty, empty, sizes], name, mode="nearest",
                    coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode="floor")
    return g.op("Resize", [x, empty, empty, sizes], name, mode="linear",
                coordinate_transformation_mode="half_pixel")


def _normalization(g, layer, x, image):
    """Keras's Normalization per channel: (x - mean) / max(sqrt(variance), 1e-7), or
    mean + x * that with invert (csrc/nn/normalization.c)."""
    name = layer.name
    consts = getattr(layer, "_constants", None)
    if consts is None:
        w = _weights(layer)
        consts = (w["mean"], w["variance"])
    mean, var = (np.asarray(v, np.float32) for v in consts)
    std = np.maximum(np.sqrt(var), np.float32(1e-7)).astype(np.float32)
    shape = (-1, 1, 1) if image else (-1,)
    m, d = g.const(name + "/mean", mean.reshape(shape)), g.const(name + "/std", std.reshape(shape))
    if layer.invert:
        return g.op("Add", [g.op("Mul", [x, d], name + "/scaled"), m], name)
    return g.op("Div", [g.op("Sub", [x, m], name + "/centred"), d], name)


def _emit(g, layer, ins, ranks):
    """ONNX nodes for one catdog layer on its inputs `ins` (NCHW when their per-sample rank in
    `ranks` is 3, else (N, C)); returns the output name."""
    from catdog import layers as L
    from catdog.layers import operations as O
    from catdog.layers.preprocessing import Normalization, Rescaling, Resizing

    kind, name, w = type(layer), layer.name, _weights(layer)
    x, image = ins[0], ranks[0] == 3
    act = getattr(layer, "activation", None)
    if isinstance(layer, Rescaling) and np.ndim(layer.scale) == 1:  # a scale per channel
        scale = np.asarray(layer.scale, np.float32).reshape((-1, 1, 1) if image else (-1,))
        y = g.op("Mul", [x, g.const(name + "/scale", scale)], name + "/mul")
        return g.op("Add", [y, g.const(name + "/offset", np.float32(layer.offset))], name)
    if isinstance(layer, (Rescaling, O.ScalarAffine)) or kind is L.core.Rescaling:
        if layer.scale == 1.0 and layer.offset != 0.0:  # x + c, x - c
            return g.op("Add", [x, g.const(name + "/offset", np.float32(layer.offset))], name)
        y = g.op("Mul", [x, g.const(name + "/scale", np.float32(layer.scale))],
                 name + ("/mul" if layer.offset != 0.0 else ""))
        if layer.offset == 0.0:
            return y
        return g.op("Add", [y, g.const(name + "/offset", np.float32(layer.offset))], name)
    if kind is Normalization:
        return _normalization(g, layer, x, image)
    if kind is Resizing:
        return _resizing(g, layer, x)
    if kind is O.TensorAdd:
        return g.op("Sub" if layer.negate_b else "Add", list(ins), name)
    if kind is O.ChannelStack:  # the channels reordered (caffe's RGB -> BGR): NCHW axis 1
        return g.op("Gather", [x, g.const(name + "/order", np.array(layer.order, np.int64))],
                    name, axis=1)
    if kind is O.ConstantAdd:  # + (or -) one value per channel
        offset = layer.offset.reshape((-1, 1, 1) if image else (-1,))
        return g.op("Add", [x, g.const(name + "/offset", offset)], name)
    if kind in (O.TensorMultiply, L.Multiply):
        a, b = (_channel_broadcast(g, f"{name}/in{i}", t, ranks[i] == 3, ranks[1 - i] == 3)
                for i, t in enumerate(ins))
        return g.op("Mul", [a, b], name)
    if kind is L.Subtract:
        return g.op("Sub", list(ins), name)
    if kind is L.Maximum:  # Max, Min, Sum and Mean take any number of inputs
        return g.op("Max", list(ins), name)
    if kind is L.Minimum:
        return g.op("Min", list(ins), name)
    if kind is L.Average:  # Keras: the sum over the inputs / their count
        return g.op("Mean", list(ins), name)
    if kind is L.Concatenate:  # the sample's (H, W, C) axis -> NCHW's; vectors: axis 1
        k = layer._engine_axis(len(layer.input_shape))
        return g.op("Concat", list(ins), name, axis=(2, 3, 1)[k] if image else 1)
    if kind is L.DepthwiseConv2D:
        k = w["depthwise_kernel"]  # (kh, kw, c, m) -> (c * m, 1, kh, kw), channel c * m + j
        wt = g.const(name + "/kernel", k.transpose(2, 3, 0, 1).reshape(-1, 1, *k.shape[:2]))
        args = [x, wt] + ([g.const(name + "/bias", w["bias"])] if layer.use_bias else [])
        y = g.op("Conv", args, name + ("/conv" if act else ""), kernel_shape=list(layer.kernel_size),
                 strides=list(layer.strides), **_pads(layer.pads), group=int(k.shape[2]),
                 dilations=list(layer.dilation_rate))
        return _activation(g, name, y, act, True)
    if kind is L.Conv2D:
        wt = g.const(name + "/kernel", w["kernel"].transpose(3, 2, 0, 1))
        args = [x, wt] + ([g.const(name + "/bias", w["bias"])] if layer.use_bias else [])
        y = g.op("Conv", args, name + ("/conv" if act else ""), kernel_shape=list(layer.kernel_size),
                 strides=list(layer.strides), **_pads(layer.pads),
                 dilations=list(layer.dilation_rate), group=int(layer.groups))
        return _activation(g, name, y, act, True)
    if kind is L.SeparableConv2D:  # depthwise (kernel, strides, padding, dilation), 1x1 + bias
        k = w["depthwise_kernel"]  # (kh, kw, c, m) -> (c * m, 1, kh, kw), as DepthwiseConv2D
        y = g.op("Conv", [x, g.const(name + "/depthwise_kernel",
                                     k.transpose(2, 3, 0, 1).reshape(-1, 1, *k.shape[:2]))],
                 name + "/depthwise", kernel_shape=list(layer.kernel_size),
                 strides=list(layer.strides), **_pads(layer.pads), group=int(k.shape[2]),
                 dilations=list(layer.dilation_rate))
        args = [y, g.const(name + "/pointwise_kernel", w["pointwise_kernel"].transpose(3, 2, 0, 1))]
        args += [g.const(name + "/bias", w["bias"])] if layer.use_bias else []
        y = g.op("Conv", args, name + ("/pointwise" if act else ""), kernel_shape=[1, 1])
        return _activation(g, name, y, act, True)
    if kind is L.Activation:
        return _activation(g, name, x, act, image) if act else g.op("Identity", [x], name)
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
    if kind is L.Add:  # Keras adds any number of inputs (left to right)
        return g.op("Add" if len(ins) == 2 else "Sum", list(ins), name)
    if kind in (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D):
        pool = "GlobalAveragePool" if kind is L.GlobalAveragePooling2D else "GlobalMaxPool"
        if layer.keepdims:  # (N, C, 1, 1): the NCHW form of Keras's (N, 1, 1, C)
            return g.op(pool, [x], name)
        return g.op("Flatten", [g.op(pool, [x], name + "/pool")], name, axis=1)
    if kind is L.Flatten:
        return _to_nhwc_flat(g, name, x, image)
    if kind is L.Reshape:  # NHWC values in their order, into the target shape
        flat = _to_nhwc_flat(g, name + "/flat", x, image)
        out = tuple(layer.output_shape)
        shape = g.const(name + "/shape", np.array([-1, *out], np.int64))
        if len(out) != 3:
            return g.op("Reshape", [flat, shape], name)
        y = g.op("Reshape", [flat, shape], name + "/nhwc")
        return g.op("Transpose", [y], name, perm=[0, 3, 1, 2])
    if kind is L.Dropout:
        return x  # inference: identity, whatever the noise_shape
    if kind is L.Dense:
        y = g.op("MatMul", [x, g.const(name + "/kernel", w["kernel"])],
                 name + ("/matmul" if layer.use_bias or act else ""))
        if layer.use_bias:
            y = g.op("Add", [y, g.const(name + "/bias", w["bias"])],
                     name + ("/bias_add" if act else ""))
        return _activation(g, name, y, act, False)
    if kind in (L.MaxPooling2D, L.AveragePooling2D):
        attrs = dict(kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                     **_pads(layer.pads))
        if kind is L.AveragePooling2D:  # Keras leaves "same" padding out of the mean
            return g.op("AveragePool", [x], name, count_include_pad=0, **attrs)
        return g.op("MaxPool", [x], name, **attrs)
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
    outs, ranks = [], []
    for i, (layer, positions, _, _) in enumerate(flat):
        ranks.append(len(layer.output_shape))
        if isinstance(layer, InputLayer):
            outs.append(g.op("Transpose", [inp], "to_nchw", perm=[0, 3, 1, 2]))
            continue
        outs.append(_emit(g, layer, [outs[p] for p in positions], [ranks[p] for p in positions]))
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
