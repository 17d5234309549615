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
                               bias (zeros without use_bias), fused relu / relu6, others
                               as their own operator,
                               strides, dilation, padding same / valid (TFLite's SAME is
                               TensorFlow's, as Keras's)
  DepthwiseConv2D              DEPTHWISE_CONV_2D, kernel (kh, kw, c, m) -> (1, kh, kw, c * m)
                               (output channel k * m + j in both), depth_multiplier m
  BatchNormalization           folded into the Conv2D / DepthwiseConv2D right before it when
                               that conv feeds only it and has no activation (kernel * s,
                               bias * s + t with s = gamma / sqrt(var + eps), t = beta -
                               mean * s), else MUL + ADD per channel with the same s, t
  ReLU / Activation            RELU, RELU6 (ReLU(6.0), activation "relu6"), LOGISTIC
                               (sigmoid), TANH, SOFTMAX (beta 1, last axis), HARD_SWISH, or
                               fused into the op before when that op can fuse it
  MaxPooling2D, AveragePooling2D  MAX_POOL_2D, AVERAGE_POOL_2D (TFLite's average leaves SAME
                               padding out of the mean, as Keras)
  ZeroPadding2D                PAD with int32 paddings ((0, 0), (t, b), (l, r), (0, 0))
  GlobalAveragePooling2D       MEAN over axes (1, 2), keep_dims as keepdims
  Flatten                      RESHAPE to (-1, H * W * C) (NHWC order, as Keras)
  Dense                        FULLY_CONNECTED, kernel (in, units) -> (units, in)
  Add                          ADD (more than two inputs: a chain, left to right)
  x + y, x - y (tensors)       ADD, SUB
Any other layer, activation or argument raises ValueError naming the layer; catdog writes no
approximation of an operator TFLite lacks.
"""
from __future__ import annotations

import re

import numpy as np

from catdog.lite import _schema as S
from catdog.lite._writer import Writer

# TFLite's float kernels apply a fused activation as a clamp (CalculateActivationRange in
# tensorflow/lite/kernels/kernel_util.h): relu and relu6 only; ActivationFunctionType TANH is
# silently the identity there (tests/test_lite.py caught it), so tanh is an operator of its own
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
    def conv(self, layer, x, fold):
        """CONV_2D / DEPTHWISE_CONV_2D, with a following BatchNormalization `fold` (or None)
        folded into its kernel and bias."""
        from catdog import layers as L

        w, wt = self.w, _weights(layer)
        depthwise = isinstance(layer, L.DepthwiseConv2D)
        act = None if fold is not None else layer.activation
        fused, rest = self.fused_or_op(layer, act)
        shape = fold.output_shape if fold is not None else layer.output_shape
        name = fold.name if fold is not None else layer.name
        if depthwise:
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
        kt = w.const(layer.name + "/kernel", kernel.astype(np.float32))
        bt = w.const(layer.name + "/bias", bias.astype(np.float32))
        y = w.activation(name + ("/conv" if rest else ""), shape)
        (sh, sw), (dh, dw) = layer.strides, layer.dilation_rate
        if depthwise:
            opts = (S.OPT_DEPTHWISE_CONV_2D, S.DepthwiseConv2DOptions, {
                S.DepthwiseConv2DOptions.padding: (self.padding(layer), "i8"),
                S.DepthwiseConv2DOptions.stride_w: (sw, "i32"),
                S.DepthwiseConv2DOptions.stride_h: (sh, "i32"),
                S.DepthwiseConv2DOptions.depth_multiplier: (layer.depth_multiplier, "i32"),
                S.DepthwiseConv2DOptions.fused_activation_function: (fused, "i8"),
                S.DepthwiseConv2DOptions.dilation_w_factor: (dw, "i32"),
                S.DepthwiseConv2DOptions.dilation_h_factor: (dh, "i32")})
            w.op(S.DEPTHWISE_CONV_2D, [x, kt, bt], [y], opts)
        else:
            opts = (S.OPT_CONV_2D, S.Conv2DOptions, {
                S.Conv2DOptions.padding: (self.padding(layer), "i8"),
                S.Conv2DOptions.stride_w: (sw, "i32"), S.Conv2DOptions.stride_h: (sh, "i32"),
                S.Conv2DOptions.fused_activation_function: (fused, "i8"),
                S.Conv2DOptions.dilation_w_factor: (dw, "i32"),
                S.Conv2DOptions.dilation_h_factor: (dh, "i32")})
            w.op(S.CONV_2D, [x, kt, bt], [y], opts)
        return self.act_op(layer, y, rest, shape, name)

    def emit(self, layer, ins, positions):
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
        if kind in (L.Conv2D, L.DepthwiseConv2D):
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
            y = ins[0]
            for i, other in enumerate(ins[1:]):
                last = i == len(ins) - 2
                z = w.activation(name if last else f"{name}/partial_{i}", shape)
                w.op(S.ADD, [y, other], [z], (S.OPT_ADD, S.AddOptions, {
                    S.AddOptions.fused_activation_function: (S.ACT_NONE, "i8")}))
                y = z
            return y
        if kind is O.TensorAdd and layer.negate_b:
            y = w.activation(name, shape)
            w.op(S.SUB, ins, [y], (S.OPT_SUB, S.SubOptions, {
                S.SubOptions.fused_activation_function: (S.ACT_NONE, "i8")}))
            return y
        _refuse(layer, "no TFLite form in catdog.lite yet")

    def convert(self):
        from catdog import layers as L

        w, flat = self.w, self.flat
        input_layer = flat[0][0]
        inp = w.activation(f"serving_default_{_input_name(self.model, input_layer)}:0",
                           input_layer.output_shape)
        outs = [inp]
        skip = set()  # BatchNormalizations folded into the conv before them
        for i, (layer, positions, _, _) in enumerate(flat[1:], start=1):
            if i in skip:
                outs.append(outs[i - 1])
                continue
            ins = [outs[p] for p in positions]
            nxt = flat[i + 1] if i + 1 < len(flat) else None
            if (type(layer) in (L.Conv2D, L.DepthwiseConv2D) and layer.activation in (None, "linear")
                    and nxt is not None and type(nxt[0]) is L.BatchNormalization
                    and nxt[1] == [i] and self.readers[i] == 1):
                outs.append(self.conv(layer, ins[0], nxt[0]))
                skip.add(i + 1)
                continue
            outs.append(self.emit(layer, ins, positions))
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
