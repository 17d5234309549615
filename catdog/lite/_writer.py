"""A TFLite model as a flatbuffer: tensors, buffers, operators, one subgraph, one signature.

Written with the `flatbuffers` package's Builder (the format's own runtime: vtables, alignment
and offsets as every FlatBuffers reader expects them) and the field numbers of _schema.py. The
layout: buffer 0 is empty (schema.fbs: "the 0th entry of this array must be an empty buffer");
each constant tensor owns one buffer, its bytes little-endian, aligned to 16 bytes so that
LiteRT maps the weights in place; activations have no data (buffer 0), shape with batch 1 and
shape_signature with -1 for the batch, as TensorFlow's converter writes them, so a runner can
take any batch (LiteRT resizes the inputs).
"""
from __future__ import annotations

import numpy as np

from catdog.lite import _schema as S


def _flatbuffers():
    try:
        import flatbuffers
    except ImportError:
        raise ImportError("catdog.lite.TFLiteConverter writes .tflite files with the flatbuffers "
                          "package: pip install catdog[lite]  (or: pip install flatbuffers)"
                          ) from None
    return flatbuffers


_TYPES = {np.dtype(np.float32): S.FLOAT32, np.dtype(np.int32): S.INT32}


class Writer:
    def __init__(self):
        self.buffers = [None]  # buffer 0: empty, by the schema's convention
        self.tensors = []  # (name, shape, shape_signature or None, TensorType, buffer index)
        self.names = set()
        self.codes = []  # builtin operator codes, in the order first used
        self.ops = []  # (opcode index, inputs, outputs, options type, options fields)

    def _unique(self, name):
        n, k = name, 1
        while n in self.names:
            n, k = f"{name}_{k}", k + 1
        self.names.add(n)
        return n

    def activation(self, name, shape, dtype=np.float32):
        """A computed tensor of per-sample `shape` (batch 1, signature -1)."""
        shape = [int(d) for d in shape]
        self.tensors.append((self._unique(name), [1] + shape, [-1] + shape,
                             _TYPES[np.dtype(dtype)], 0))
        return len(self.tensors) - 1

    def const(self, name, array):
        """A constant tensor holding `array` (float32 or int32, stored little-endian)."""
        a = np.asarray(array)
        if a.dtype not in _TYPES:
            a = a.astype(np.float32)
        data = np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()
        self.buffers.append(data)
        self.tensors.append((self._unique(name), list(a.shape), None, _TYPES[a.dtype],
                             len(self.buffers) - 1))
        return len(self.tensors) - 1

    def op(self, code, inputs, outputs, options=None):
        """`options`: (BuiltinOptions tag, options table class, {field: (value, kind)})."""
        if code not in self.codes:
            self.codes.append(code)
        self.ops.append((self.codes.index(code), list(inputs), list(outputs), options))

    # -- serialisation ---------------------------------------------------------------
    def finish(self, inputs, outputs, description="catdog"):
        """The .tflite bytes: `inputs` / `outputs` are [(signature name, tensor index)]; one
        signature, "serving_default", as TensorFlow's converter writes for a Keras model."""
        fb = _flatbuffers()
        size = sum(len(d) + 16 for d in self.buffers if d) + 64 * len(self.tensors) + 4096
        b = fb.Builder(size)
        b.ForceDefaults(True)  # every field catdog sets is written, default or not

        def ints(xs):
            b.StartVector(4, len(xs), 4)
            for x in reversed(xs):
                b.PrependInt32(int(x))
            return b.EndVector()

        def offsets(xs):
            b.StartVector(4, len(xs), 4)
            for x in reversed(xs):
                b.PrependUOffsetTRelative(x)
            return b.EndVector()

        def table(cls, fields):
            """fields: {field number: (value, "i8" | "u8" | "i32" | "u32" | "bool" | "f32" |
            "off")}; "off" is an offset to a table, vector or string built before."""
            b.StartObject(cls.FIELDS)
            for slot, (value, kind) in fields.items():
                if kind == "off":
                    b.PrependUOffsetTRelativeSlot(slot, value, 0)
                elif kind == "i8":
                    b.PrependInt8Slot(slot, value, 0)
                elif kind == "u8":
                    b.PrependUint8Slot(slot, value, 0)
                elif kind == "i32":
                    b.PrependInt32Slot(slot, value, 0)
                elif kind == "u32":
                    b.PrependUint32Slot(slot, value, 0)
                elif kind == "bool":
                    b.PrependBoolSlot(slot, value, False)
                elif kind == "f32":
                    b.PrependFloat32Slot(slot, value, 0.0)
                else:
                    raise AssertionError(kind)
            return b.EndObject()

        # weights first: the builder writes back to front, so they end up at the file's end
        bufs = []
        for data in self.buffers:
            if not data:
                bufs.append(table(S.Buffer, {}))
                continue
            b.StartVector(1, len(data), 16)  # 16-byte aligned bytes
            b.head -= len(data)
            b.Bytes[b.head:b.head + len(data)] = data
            vec = b.EndVector()
            bufs.append(table(S.Buffer, {S.Buffer.data: (vec, "off")}))
        tensors = []
        for name, shape, signature, ttype, buf in self.tensors:
            n, sv = b.CreateString(name), ints(shape)
            fields = {S.Tensor.shape: (sv, "off"), S.Tensor.type: (ttype, "i8"),
                      S.Tensor.buffer: (buf, "u32"), S.Tensor.name: (n, "off")}
            if signature is not None:
                fields[S.Tensor.shape_signature] = (ints(signature), "off")
            tensors.append(table(S.Tensor, fields))
        ops = []
        for idx, ins, outs, options in self.ops:
            fields = {S.Operator.opcode_index: (idx, "u32")}
            if options is not None:
                tag, cls, opt_fields = options
                fields[S.Operator.builtin_options_type] = (tag, "u8")
                fields[S.Operator.builtin_options] = (table(cls, opt_fields), "off")
            fields[S.Operator.inputs] = (ints(ins), "off")
            fields[S.Operator.outputs] = (ints(outs), "off")
            ops.append(table(S.Operator, fields))
        name = b.CreateString("main")
        tv, ov = offsets(tensors), offsets(ops)
        iv = ints([t for _, t in inputs])
        outv = ints([t for _, t in outputs])
        subgraph = table(S.SubGraph, {S.SubGraph.tensors: (tv, "off"), S.SubGraph.inputs: (iv, "off"),
                                      S.SubGraph.outputs: (outv, "off"),
                                      S.SubGraph.operators: (ov, "off"),
                                      S.SubGraph.name: (name, "off")})
        codes = []
        for c in self.codes:
            # deprecated_builtin_code (int8) holds codes < 127; later ones say 127
            # (PLACEHOLDER_FOR_GREATER_OP_CODES) and live in builtin_code
            codes.append(table(S.OperatorCode, {
                S.OperatorCode.deprecated_builtin_code: (min(c, 127), "i8"),
                S.OperatorCode.version: (1, "i32"),
                S.OperatorCode.builtin_code: (c, "i32")}))

        def tensor_maps(pairs):
            maps = []
            for nm, t in pairs:
                s = b.CreateString(nm)
                maps.append(table(S.TensorMap, {S.TensorMap.name: (s, "off"),
                                                S.TensorMap.tensor_index: (t, "u32")}))
            return offsets(maps)

        sin, sout = tensor_maps(inputs), tensor_maps(outputs)
        key = b.CreateString("serving_default")
        sig = table(S.SignatureDef, {S.SignatureDef.inputs: (sin, "off"),
                                     S.SignatureDef.outputs: (sout, "off"),
                                     S.SignatureDef.signature_key: (key, "off"),
                                     S.SignatureDef.subgraph_index: (0, "u32")})
        cv, sgv, bv, sdv = offsets(codes), offsets([subgraph]), offsets(bufs), offsets([sig])
        desc = b.CreateString(description)
        model = table(S.Model, {S.Model.version: (3, "u32"), S.Model.operator_codes: (cv, "off"),
                                S.Model.subgraphs: (sgv, "off"), S.Model.description: (desc, "off"),
                                S.Model.buffers: (bv, "off"), S.Model.signature_defs: (sdv, "off")})
        b.Finish(model, file_identifier=b"TFL3")
        return bytes(b.Output())
