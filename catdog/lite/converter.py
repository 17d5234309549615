"""catdog.lite.TFLiteConverter: a catdog model's inference graph as a .tflite flatbuffer.

`TFLiteConverter.from_keras_model(model).convert()` returns the bytes of a TFLite model
(schema version 3, float32, no quantization) that LiteRT's interpreter runs, as TensorFlow's
`tf.lite.TFLiteConverter` does for the Keras model. What the file holds:

* one subgraph "main" and one signature "serving_default", with one input named after the
  model's input (see `_input_name`) and one output "output_0", as TensorFlow writes them;
  activations have shape (1, ...) and shape_signature (-1, ...): any batch runs;
* inference semantics, as catdog's predict: augmentation layers (RandomFlip, RandomRotation,
  RandomZoom, RandomContrast, RandomBrightness, ...) and Dropout are left out (identity);
* per layer (TFLite builtin operators, tensorflow/lite/kernels):
  Rescaling / x * c + d        MUL then ADD with scalar constants (exact float32, as the
                               engine computes it; TensorFlow folds it into the first conv)
  Conv2D                       CONV_2D, kernel (kh, kw, cin, cout) -> (cout, kh, kw, cin),
                               bias (zeros without use_bias), strides, dilation, padding
                               same / valid (TFLite's SAME is TensorFlow's, as Keras's)
  DepthwiseConv2D              DEPTHWISE_CONV_2D, kernel (kh, kw, c, m) -> (1, kh, kw, c * m)
                               (output channel k * m + j in both), depth_multiplier m
  BatchNormalization           folded into the convolution right before it when
                               that conv feeds only it and has no activation (kernel * s,
                               bias * s + t with s = gamma / sqrt(var + eps), t = beta -
                               mean * s), else MUL + ADD per channel with the same s, t;
                               a ReLU / ReLU(6) after conv [+ BN] is the conv's fused
                               activation (MobileNetV2's blocks are one op each, as TF's)
  SeparableConv2D              DEPTHWISE_CONV_2D (no bias) then a 1x1 CONV_2D with the bias
  ReLU / Activation            RELU, RELU6 (ReLU(6.0), activation "relu6"), LOGISTIC
                               (sigmoid), TANH, SOFTMAX (beta 1, last axis), HARD_SWISH,
                               swish / silu as LOGISTIC then MUL (x * sigmoid(x), Keras's
                               formula), or fused into the op before when TFLite's kernel
                               fuses it (relu, relu6)
  MaxPooling2D, AveragePooling2D  MAX_POOL_2D, AVERAGE_POOL_2D (TFLite's average leaves SAME
                               padding out of the mean, as Keras)
  ZeroPadding2D                PAD with int32 paddings ((0, 0), (t, b), (l, r), (0, 0))
  GlobalAveragePooling2D, GlobalMaxPooling2D  MEAN, REDUCE_MAX over axes (1, 2), keep_dims as
                               keepdims
  Flatten                      RESHAPE to (-1, H * W * C) (NHWC order, as Keras)
  Dense                        FULLY_CONNECTED, kernel (in, units) -> (units, in)
  Add (any number of inputs), Subtract, Multiply, x + y, x - y, x * y  ADD (a chain, left to
                               right), SUB, MUL; a per-channel (C,) gate is reshaped to
                               (-1, 1, 1, C) to broadcast over an image
  Concatenate                  CONCATENATION on Keras's axis
Any other layer, activation or argument raises ValueError naming the layer; catdog writes no
approximation of an operator TFLite lacks.
"""
from __future__ import annotations

import re

import numpy as np

from catdog.lite import _schema as S
from catdog.lite._writer import Writer

# Fused activations: the relu family only. TFLite's float kernels apply a fused activation as
# an output clamp; LiteRT 2.3.0 ran a CONV_2D with fused TANH as the identity (caught by
# tests/test_lite.py), so tanh and the rest are operators of their own
_FUSED = {None: S.ACT_NONE, "linear": S.ACT_NONE, "relu": S.ACT_RELU, "relu6": S.ACT_RELU6}
# activations as operators of their own: (builtin code, options)
_ACT_OPS = {"relu": (S.RELU, None), "relu6": (S.RELU6, None), "sigmoid": (S.LOGISTIC, None),
            "tanh": (S.TANH, None), "hard_silu": (S.HARD_SWISH, None),
            "hard_swish": (S.HARD_SWISH, None),
            "softmax": (S.SOFTMAX, (S.OPT_SOFTMAX, S.SoftmaxOptions,
                                    {S.SoftmaxOptions.beta: (1.0, "f32")}))}


def _refuse(layer, what):
    raise ValueError(f"catdog.lite: layer '{layer.name}' ({type(layer).__name__}): {what}; "
                     "TFLiteConverter converts the layers listed in catdog/lite/converter.py")


def _weights(layer):
    return {n: np.asarray(w, np.float32) for n, w, _ in layer._weights}


def _input_name(model, input_layer):
    """The signature's input name. TensorFlow's converter uses the Keras input tensor's name:
    the Input's `name=` when given, else Keras 3's session-wide counter (keras_tensor,
    keras_tensor_1, ...: keras/src/backend/common/keras_tensor.py, keras/src/utils/naming.py
    uniquify), which counts every symbolic tensor the session has made. catdog's symbolic
    tensors are not numbered that way (its Sequential is built again on every add, Keras's
    once), so catdog uses its input layer's name: the Input's `name=`, else
    "<model name>_input" for a Sequential (Keras 2's spelling) or the InputLayer's own name."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", input_layer.name or "input")
    return name or "input"


def _is_clamp_relu(layer):
    """A layer TFLite's conv kernels can apply as their fused clamp: relu or relu6."""
    from catdog import layers as L

    if type(layer) is L.ReLU:
        return layer.max_value is None or float(layer.max_value) == 6.0
    return type(layer) is L.Activation and layer.activation in ("relu", "relu6")


class _Converter:
    def __init__(self, model):
        from catdog.layers.core import InputLayer

        model._require_built()
        model._sync()  # trained weights pulled back from the engine
        self.model = model
        self.flat, _augment = model._flatten()  # augmentation: identity at inference
        if len(self.flat) < 1 or not isinstance(self.flat[0][0], InputLayer):
            raise ValueError("catdog.lite: the model has no input layer")
        self.w = Writer()
        # how many layers read each flat position (BN folding needs a conv read only by it)
        self.readers = [0] * len(self.flat)
        for _layer, positions, _, _ in self.flat:
            for p in positions:
                self.readers[p] += 1

    # -- helpers ---------------------------------------------------------------------
    def act_op(self, layer, x, act, shape, name):
        """Activation `act` as an operator of its own on tensor x."""
        if act in (None, "linear"):
            return x
        if act in ("swish", "silu"):  # Keras: x * sigmoid(x); TFLite has no builtin for it
            sig = self.act_op(layer, x, "sigmoid", shape, name + "/sigmoid")
            y = self.w.activation(name, shape)
            self.w.op(S.MUL, [x, sig], [y], (S.OPT_MUL, S.MulOptions, {
                S.MulOptions.fused_activation_function: (S.ACT_NONE, "i8")}))
            return y
        if act not in _ACT_OPS:
            _refuse(layer, f"activation {act!r} has no TFLite operator in catdog.lite")
        code, options = _ACT_OPS[act]
        y = self.w.activation(name, shape)
        self.w.op(code, [x], [y], options)
        return y

    def fused_or_op(self, layer, act):
        """(fused activation code, activation left for its own operator)."""
        if act in _FUSED:
            return _FUSED[act], None
        return S.ACT_NONE, act

    def scale_shift(self, name, x, shape, scale, shift):
        """x * scale + shift (scalars or per-channel vectors): MUL then ADD, each left out
        when it is the identity."""
        w = self.w
        scale, shift = np.asarray(scale, np.float32), np.asarray(shift, np.float32)
        if not np.all(scale == 1.0):
            y = w.activation(name + ("/mul" if np.any(shift != 0.0) else ""), shape)
            w.op(S.MUL, [x, w.const(name + "/scale", scale)], [y],
                 (S.OPT_MUL, S.MulOptions, {S.MulOptions.fused_activation_function:
                                            (S.ACT_NONE, "i8")}))
            x = y
        if np.any(shift != 0.0):
            y = w.activation(name, shape)
            w.op(S.ADD, [x, w.const(name + "/offset", shift)], [y],
                 (S.OPT_ADD, S.AddOptions, {S.AddOptions.fused_activation_function:
                                            (S.ACT_NONE, "i8")}))
            x = y
        return x

    @staticmethod
    def bn_affine(layer):
        w = _weights(layer)
        var, mean = w["moving_variance"], w["moving_mean"]
        gamma = w.get("gamma", np.ones_like(mean))
        beta = w.get("beta", np.zeros_like(mean))
        s = (gamma / np.sqrt(var + np.float32(layer.epsilon))).astype(np.float32)
        return s, (beta - mean * s).astype(np.float32)

    def padding(self, layer):
        if layer.padding not in ("same", "valid"):
            _refuse(layer, f"padding {layer.padding!r}")
        return S.SAME if layer.padding == "same" else S.VALID

    # -- layers ----------------------------------------------------------------------
    def conv_op(self, layer, x, kernel, bias, shape, name, fused, depthwise, multiplier=1,
                geometry=True):
        """One CONV_2D (kernel (cout, kh, kw, cin)) or DEPTHWISE_CONV_2D (kernel (1, kh, kw,
        c * m)) with `layer`'s padding, strides and dilation (geometry=False: a 1x1, stride 1
        pointwise convolution)."""
        w = self.w
        kt = w.const(name + ("/depthwise_kernel" if depthwise else "/kernel"),
                     kernel.astype(np.float32))
        bt = w.const(name + "/bias", bias.astype(np.float32))
        y = w.activation(name, shape)
        pad = self.padding(layer) if geometry else S.VALID
        (sh, sw), (dh, dw) = (layer.strides, layer.dilation_rate) if geometry else ((1, 1), (1, 1))
        if depthwise:
            O = S.DepthwiseConv2DOptions
            w.op(S.DEPTHWISE_CONV_2D, [x, kt, bt], [y], (S.OPT_DEPTHWISE_CONV_2D, O, {
                O.padding: (pad, "i8"), O.stride_w: (sw, "i32"), O.stride_h: (sh, "i32"),
                O.depth_multiplier: (multiplier, "i32"),
                O.fused_activation_function: (fused, "i8"),
                O.dilation_w_factor: (dw, "i32"), O.dilation_h_factor: (dh, "i32")}))
        else:
            O = S.Conv2DOptions
            w.op(S.CONV_2D, [x, kt, bt], [y], (S.OPT_CONV_2D, O, {
                O.padding: (pad, "i8"), O.stride_w: (sw, "i32"), O.stride_h: (sh, "i32"),
                O.fused_activation_function: (fused, "i8"),
                O.dilation_w_factor: (dw, "i32"), O.dilation_h_factor: (dh, "i32")}))
        return y

    def conv(self, layer, x, fold=None, relu=None):
        """Conv2D / DepthwiseConv2D / SeparableConv2D, with a following BatchNormalization
        `fold` (or None) folded into its (last) kernel and bias, and a following ReLU layer
        `relu` (or None: the conv's own activation) fused."""
        from catdog import layers as L

        wt = _weights(layer)
        act = layer.activation
        if relu is not None:
            act = "relu" if type(relu) is L.ReLU and relu.max_value is None else (
                "relu6" if type(relu) is L.ReLU else relu.activation)
        fused, rest = self.fused_or_op(layer, act)
        last = relu if relu is not None else fold if fold is not None else layer
        shape, name = last.output_shape, last.name
        depthwise = isinstance(layer, L.DepthwiseConv2D)
        if isinstance(layer, L.SeparableConv2D):
            # depthwise (no bias, no activation) into the 1x1 pointwise conv with the bias
            k = wt["depthwise_kernel"]  # (kh, kw, c, m) -> (1, kh, kw, c * m)
            h, wd = layer.output_shape[:2]
            x = self.conv_op(layer, x, k.reshape(1, k.shape[0], k.shape[1], -1),
                             np.zeros(k.shape[2] * k.shape[3], np.float32),
                             (h, wd, k.shape[2] * k.shape[3]), layer.name + "/depthwise",
                             S.ACT_NONE, True, layer.depth_multiplier)
            kernel = wt["pointwise_kernel"].transpose(3, 0, 1, 2)  # (1, 1, cm, f) -> (f, 1, 1, cm)
        elif depthwise:
            k = wt["depthwise_kernel"]  # (kh, kw, c, m) -> (1, kh, kw, c * m)
            kernel = k.reshape(1, k.shape[0], k.shape[1], -1)
        else:
            if layer.groups != 1:
                _refuse(layer, f"groups={layer.groups} (grouped convolution)")
            kernel = wt["kernel"].transpose(3, 0, 1, 2)  # (kh, kw, cin, cout) -> (cout, kh, kw, cin)
        cout = kernel.shape[-1] if depthwise else kernel.shape[0]
        bias = wt["bias"] if layer.use_bias else np.zeros(cout, np.float32)
        if fold is not None:
            s, t = self.bn_affine(fold)
            kernel = kernel * s if depthwise else kernel * s[:, None, None, None]
            bias = bias * s + t
        separable = isinstance(layer, L.SeparableConv2D)
        y = self.conv_op(layer, x, kernel, bias, shape,
                         name + ("/pointwise" if separable and rest else "/conv" if rest else ""),
                         fused, depthwise, getattr(layer, "depth_multiplier", 1),
                         geometry=not separable)
        return self.act_op(layer, y, rest, shape, name)

    def binary(self, code, ins, ranks, shape, name, tag, cls):
        """An elementwise ADD / SUB / MUL of two tensors; a per-channel vector (C,) against an
        image is reshaped to (-1, 1, 1, C) first (TFLite broadcasts NumPy's way, from the last
        axis, so (N, C) against (N, H, W, C) would pair N with W)."""
        w = self.w
        ins = list(ins)
        for i in range(2):
            if ranks[i] == 1 and ranks[1 - i] == 3:
                c = w.activation(f"{name}/gate_{i}", (1, 1, shape[-1]))
                w.op(S.RESHAPE, [ins[i], w.const(f"{name}/gate_shape_{i}",
                                                 np.array([-1, 1, 1, shape[-1]], np.int32))],
                     [c], (S.OPT_RESHAPE, S.ReshapeOptions, {}))
                ins[i] = c
        y = w.activation(name, shape)
        w.op(code, ins, [y], (tag, cls, {cls.fused_activation_function: (S.ACT_NONE, "i8")}))
        return y

    def emit(self, layer, ins, ranks):
        from catdog import layers as L
        from catdog.layers import operations as O

        w, name, shape = self.w, layer.name, layer.output_shape
        kind, x = type(layer), ins[0]
        if kind is L.Dropout:
            return x  # inference: identity, whatever the noise_shape
        if hasattr(layer, "scale") and hasattr(layer, "offset") and (
                kind.__name__ == "Rescaling" or isinstance(layer, O.ScalarAffine)):
            return self.scale_shift(name, x, shape, np.float32(layer.scale),
                                    np.float32(layer.offset))
        if kind in (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D):
            return self.conv(layer, x, None)
        if kind is L.BatchNormalization:
            s, t = self.bn_affine(layer)
            return self.scale_shift(name, x, shape, s, t)
        if kind is L.ReLU:
            if layer.max_value is None:
                return self.act_op(layer, x, "relu", shape, name)
            if float(layer.max_value) == 6.0:
                return self.act_op(layer, x, "relu6", shape, name)
            _refuse(layer, f"max_value={layer.max_value} (TFLite has RELU and RELU6)")
        if kind is L.Activation:
            if layer.activation in (None, "linear"):
                return x
            return self.act_op(layer, x, layer.activation, shape, name)
        if kind in (L.MaxPooling2D, L.AveragePooling2D):
            y = w.activation(name, shape)
            (fh, fw), (sh, sw) = layer.pool_size, layer.strides
            w.op(S.MAX_POOL_2D if kind is L.MaxPooling2D else S.AVERAGE_POOL_2D, [x], [y],
                 (S.OPT_POOL_2D, S.Pool2DOptions, {
                     S.Pool2DOptions.padding: (self.padding(layer), "i8"),
                     S.Pool2DOptions.stride_w: (sw, "i32"), S.Pool2DOptions.stride_h: (sh, "i32"),
                     S.Pool2DOptions.filter_width: (fw, "i32"),
                     S.Pool2DOptions.filter_height: (fh, "i32"),
                     S.Pool2DOptions.fused_activation_function: (S.ACT_NONE, "i8")}))
            return y
        if kind is L.ZeroPadding2D:
            (t, b), (l, r) = layer.padding
            pads = np.array([[0, 0], [t, b], [l, r], [0, 0]], np.int32)
            y = w.activation(name, shape)
            w.op(S.PAD, [x, w.const(name + "/paddings", pads)], [y],
                 (S.OPT_PAD, S.PadOptions, {}))
            return y
        if kind is L.GlobalAveragePooling2D:
            y = w.activation(name, shape)
            w.op(S.MEAN, [x, w.const(name + "/axes", np.array([1, 2], np.int32))], [y],
                 (S.OPT_REDUCER, S.ReducerOptions,
                  {S.ReducerOptions.keep_dims: (bool(layer.keepdims), "bool")}))
            return y
        if kind is L.Flatten:
            y = w.activation(name, shape)
            w.op(S.RESHAPE, [x, w.const(name + "/shape", np.array([-1, *shape], np.int32))],
                 [y], (S.OPT_RESHAPE, S.ReshapeOptions, {}))
            return y
        if kind is L.Dense:
            wt = _weights(layer)
            fused, rest = self.fused_or_op(layer, layer.activation)
            kt = w.const(name + "/kernel", np.ascontiguousarray(wt["kernel"].T))
            bias = wt["bias"] if layer.use_bias else np.zeros(layer.units, np.float32)
            bt = w.const(name + "/bias", bias)
            y = w.activation(name + ("/matmul" if rest else ""), shape)
            w.op(S.FULLY_CONNECTED, [x, kt, bt], [y],
                 (S.OPT_FULLY_CONNECTED, S.FullyConnectedOptions, {
                     S.FullyConnectedOptions.fused_activation_function: (fused, "i8"),
                     S.FullyConnectedOptions.keep_num_dims: (False, "bool")}))
            return self.act_op(layer, y, rest, shape, name)
        if kind is L.Add or (kind is O.TensorAdd and not layer.negate_b):
            y, r = ins[0], ranks[0]
            for i, other in enumerate(ins[1:]):  # left to right, as Keras sums them
                last = i == len(ins) - 2
                y = self.binary(S.ADD, [y, other], [r, ranks[i + 1]], shape,
                                name if last else f"{name}/partial_{i}", S.OPT_ADD, S.AddOptions)
                r = max(r, ranks[i + 1])
            return y
        if kind is L.Subtract or (kind is O.TensorAdd and layer.negate_b):
            return self.binary(S.SUB, ins, ranks, shape, name, S.OPT_SUB, S.SubOptions)
        if kind in (L.Multiply, O.TensorMultiply):
            return self.binary(S.MUL, ins, ranks, shape, name, S.OPT_MUL, S.MulOptions)
        if kind is L.GlobalMaxPooling2D:
            y = w.activation(name, shape)
            w.op(S.REDUCE_MAX, [x, w.const(name + "/axes", np.array([1, 2], np.int32))], [y],
                 (S.OPT_REDUCER, S.ReducerOptions,
                  {S.ReducerOptions.keep_dims: (bool(layer.keepdims), "bool")}))
            return y
        if kind is L.Concatenate:  # Keras's axis on (batch, *sample), the batch axis excluded
            axis = layer.axis % (len(shape) + 1)
            y = w.activation(name, shape)
            O_ = S.ConcatenationOptions
            w.op(S.CONCATENATION, ins, [y], (S.OPT_CONCATENATION, O_, {
                O_.axis: (axis, "i32"), O_.fused_activation_function: (S.ACT_NONE, "i8")}))
            return y
        _refuse(layer, "no TFLite form in catdog.lite yet")

    def fused_next(self, j, accepts):
        """Whether flat[j + 1] is a layer `accepts` takes, reading flat[j] alone, and flat[j]
        is read by nothing else (so it can be fused away)."""
        nxt = self.flat[j + 1] if j + 1 < len(self.flat) else None
        return (nxt is not None and accepts(nxt[0]) and nxt[1] == [j]
                and self.readers[j] == 1)

    def convert(self):
        from catdog import layers as L

        w, flat = self.w, self.flat
        input_layer = flat[0][0]
        inp = w.activation(f"serving_default_{_input_name(self.model, input_layer)}:0",
                           input_layer.output_shape)
        outs = [inp]
        ranks = [len(layer.output_shape) for layer, *_ in flat]  # per sample
        i = 1
        while i < len(flat):
            layer, positions = flat[i][:2]
            ins = [outs[p] for p in positions]
            if type(layer) in (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D) \
                    and layer.activation in (None, "linear"):
                # conv [-> BatchNormalization] [-> ReLU / ReLU(6) / Activation relu(6)] as one
                # operator, as TensorFlow's converter writes it (LiteRT 2.1.0's XNNPACK also
                # gets a SAME conv followed by a separate RELU wrong: (15, 15) for (16, 16))
                j, fold, relu = i, None, None
                if self.fused_next(j, lambda l: type(l) is L.BatchNormalization):
                    j, fold = j + 1, flat[j + 1][0]
                if self.fused_next(j, _is_clamp_relu):
                    j, relu = j + 1, flat[j + 1][0]
                y = self.conv(layer, ins[0], fold, relu)
                outs += [y] * (j - i + 1)  # the fused layers' outputs: read by nothing else
                i = j + 1
                continue
            outs.append(self.emit(layer, ins, [ranks[p] for p in positions]))
            i += 1
        out = outs[-1]
        if out == inp:
            raise ValueError("catdog.lite: the model computes nothing at inference (its output "
                             "is its input)")
        return w.finish([(_input_name(self.model, input_layer), inp)], [("output_0", out)],
                        description="catdog")


class TFLiteConverter:
    """tf.lite.TFLiteConverter's Keras entry point: `from_keras_model(model).convert()`.

    Float32 only: `optimizations` (quantization) must stay empty; the other TensorFlow knobs
    (target_spec, representative_dataset, ...) do not exist here."""

    def __init__(self, model):
        self._model = model
        self.optimizations = []

    @classmethod
    def from_keras_model(cls, model):
        from catdog.models import Model

        if not isinstance(model, Model):
            raise TypeError(f"TFLiteConverter.from_keras_model takes a catdog model, got "
                            f"{type(model).__name__}")
        return cls(model)

    def convert(self) -> bytes:
        """The .tflite flatbuffer's bytes (see the module doc)."""
        if self.optimizations:
            raise ValueError("catdog.lite writes float32 models: optimizations (quantization) "
                             "are not supported")
        return _Converter(self._model).convert()
