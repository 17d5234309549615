"""PROTOTYPE, not part of the package (issue 22's TFLite question; session 9 helper): a .tflite
writer for catdog Sequential CNNs of the image classification tutorial's kinds (Rescaling,
Conv2D [+relu], MaxPooling2D, Flatten, Dense [+relu]; augmentation and Dropout dropped as at
inference), checked by running the file in LiteRT's own interpreter.

    pip install ai-edge-litert            # 22 MB wheel; brings flatbuffers, protobuf, ml_dtypes
    PYTHONPATH=<its site-packages> .venv/bin/python docs/tflite_writer_prototype.py

It borrows the TFLite schema's generated builder functions from ai_edge_litert
(schema_py_generated.py, which needs only the `flatbuffers` package); a real
catdog.lite.TFLiteConverter would hand-write the ~40 builder calls it uses against the
`flatbuffers` runtime (or vendor the schema's table slots) so that writing needs no LiteRT.
Measured on the tutorial's second model (random weights, 180x180): a 15.96 MB file (TF's own
converter: 15.96 MB, with Rescaling folded into the first conv), LiteRT's output within 1.4e-7
of catdog's predict. Fixed batch 1 (shape [1, ...]; TF writes shape_signature [-1, ...]).
"""
import flatbuffers
import numpy as np

from ai_edge_litert import schema_py_generated as S  # only flatbuffers inside

ACT = {None: S.ActivationFunctionType.NONE, "linear": S.ActivationFunctionType.NONE,
       "relu": S.ActivationFunctionType.RELU, "relu6": S.ActivationFunctionType.RELU6}


class Writer:
    def __init__(self):
        self.b = flatbuffers.Builder(1 << 20)
        self.buffers = [b""]  # buffer 0: empty, by convention
        self.tensors = []  # (name, shape, buffer)
        self.ops = []  # (opcode index, inputs, outputs, options type, options builder fn)
        self.codes = []

    def tensor(self, name, shape, data=None):
        buf = 0
        if data is not None:
            self.buffers.append(np.ascontiguousarray(data).tobytes())
            buf = len(self.buffers) - 1
        self.tensors.append((name, list(shape), buf, np.int32 if data is not None and data.dtype == np.int32 else np.float32))
        return len(self.tensors) - 1

    def op(self, code, inputs, outputs, opt_type=0, opt=None):
        if code not in self.codes:
            self.codes.append(code)
        self.ops.append((self.codes.index(code), inputs, outputs, opt_type, opt))

    def vec_i32(self, start, xs):
        start(self.b, len(xs))
        for x in reversed(xs):
            self.b.PrependInt32(x)
        return self.b.EndVector()

    def finish(self, inp, out, in_name, out_name):
        b = self.b
        # buffers (data aligned to 16 bytes)
        bufs = []
        for data in self.buffers:
            if data:
                b.StartVector(1, len(data), 16)
                b.head = b.head - len(data)
                b.Bytes[b.head:b.head + len(data)] = data
                dv = b.EndVector()
                S.BufferStart(b); S.BufferAddData(b, dv); bufs.append(S.BufferEnd(b))
            else:
                S.BufferStart(b); bufs.append(S.BufferEnd(b))
        tens = []
        for name, shape, buf, dt in self.tensors:
            n = b.CreateString(name)
            sv = self.vec_i32(S.TensorStartShapeVector, shape)
            S.TensorStart(b); S.TensorAddShape(b, sv); S.TensorAddName(b, n); S.TensorAddBuffer(b, buf)
            S.TensorAddType(b, S.TensorType.INT32 if dt == np.int32 else S.TensorType.FLOAT32)
            tens.append(S.TensorEnd(b))
        ops = []
        for idx, ins, outs, ot, opt in self.ops:
            o = opt(b) if opt else None
            iv = self.vec_i32(S.OperatorStartInputsVector, ins)
            ov = self.vec_i32(S.OperatorStartOutputsVector, outs)
            S.OperatorStart(b); S.OperatorAddOpcodeIndex(b, idx); S.OperatorAddInputs(b, iv)
            S.OperatorAddOutputs(b, ov)
            if o is not None:
                S.OperatorAddBuiltinOptionsType(b, ot); S.OperatorAddBuiltinOptions(b, o)
            ops.append(S.OperatorEnd(b))

        def table_vec(start, items):
            start(b, len(items))
            for it in reversed(items):
                b.PrependUOffsetTRelative(it)
            return b.EndVector()
        tv = table_vec(S.SubGraphStartTensorsVector, tens)
        opv = table_vec(S.SubGraphStartOperatorsVector, ops)
        iv = self.vec_i32(S.SubGraphStartInputsVector, [inp])
        ov = self.vec_i32(S.SubGraphStartOutputsVector, [out])
        name = b.CreateString("main")
        S.SubGraphStart(b); S.SubGraphAddTensors(b, tv); S.SubGraphAddOperators(b, opv)
        S.SubGraphAddInputs(b, iv); S.SubGraphAddOutputs(b, ov); S.SubGraphAddName(b, name)
        sg = S.SubGraphEnd(b)
        codes = []
        for c in self.codes:
            S.OperatorCodeStart(b); S.OperatorCodeAddBuiltinCode(b, c)
            S.OperatorCodeAddDeprecatedBuiltinCode(b, min(c, 127)); S.OperatorCodeAddVersion(b, 1)
            codes.append(S.OperatorCodeEnd(b))

        def tmap(nm, t):
            s = b.CreateString(nm)
            S.TensorMapStart(b); S.TensorMapAddName(b, s); S.TensorMapAddTensorIndex(b, t)
            return S.TensorMapEnd(b)
        ti, to = tmap(in_name, inp), tmap(out_name, out)
        siv = table_vec(S.SignatureDefStartInputsVector, [ti])
        sov = table_vec(S.SignatureDefStartOutputsVector, [to])
        key = b.CreateString("serving_default")
        S.SignatureDefStart(b); S.SignatureDefAddInputs(b, siv); S.SignatureDefAddOutputs(b, sov)
        S.SignatureDefAddSignatureKey(b, key); S.SignatureDefAddSubgraphIndex(b, 0)
        sd = S.SignatureDefEnd(b)
        cv = table_vec(S.ModelStartOperatorCodesVector, codes)
        sgv = table_vec(S.ModelStartSubgraphsVector, [sg])
        bv = table_vec(S.ModelStartBuffersVector, bufs)
        sdv = table_vec(S.ModelStartSignatureDefsVector, [sd])
        desc = b.CreateString("catdog")
        S.ModelStart(b); S.ModelAddVersion(b, 3); S.ModelAddOperatorCodes(b, cv)
        S.ModelAddSubgraphs(b, sgv); S.ModelAddBuffers(b, bv); S.ModelAddDescription(b, desc)
        S.ModelAddSignatureDefs(b, sdv)
        b.Finish(S.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def leaves(model):
    for l in model.layers:
        if hasattr(l, "layers") and l.layers:
            yield from leaves(l)
        else:
            yield l


def convert(model):
    w = Writer()
    shape = [1, *model.input_shape]
    cur = w.tensor("serving_default_input:0", shape)
    inp = cur
    for l in leaves(model):
        kind = type(l).__name__
        if kind in ("RandomFlip", "RandomRotation", "RandomZoom", "Dropout", "InputLayer"):
            continue
        if kind == "Rescaling":
            s = w.tensor(l.name + "/scale", [], np.array(l.scale, np.float32))
            nxt = w.tensor(l.name, shape)
            w.op(S.BuiltinOperator.MUL, [cur, s], [nxt])
            cur = nxt
            if float(l.offset) != 0.0:
                o = w.tensor(l.name + "/offset", [], np.array(l.offset, np.float32))
                nxt = w.tensor(l.name + "/add", shape)
                w.op(S.BuiltinOperator.ADD, [cur, o], [nxt])
                cur = nxt
        elif kind == "Conv2D":
            k, bias = l.get_weights()
            kt = w.tensor(l.name + "/kernel", k.transpose(3, 0, 1, 2).shape, k.transpose(3, 0, 1, 2).astype(np.float32))
            bt = w.tensor(l.name + "/bias", bias.shape, bias.astype(np.float32))
            shape = [1, *l.compute_output_shape(tuple(shape[1:]))]
            nxt = w.tensor(l.name, shape)
            pad = S.Padding.SAME if l.padding == "same" else S.Padding.VALID
            act, st = ACT[l.activation], l.strides

            def opt(b, pad=pad, act=act, st=st):
                S.Conv2DOptionsStart(b); S.Conv2DOptionsAddPadding(b, pad)
                S.Conv2DOptionsAddStrideH(b, st[0]); S.Conv2DOptionsAddStrideW(b, st[1])
                S.Conv2DOptionsAddDilationHFactor(b, 1); S.Conv2DOptionsAddDilationWFactor(b, 1)
                S.Conv2DOptionsAddFusedActivationFunction(b, act)
                return S.Conv2DOptionsEnd(b)
            w.op(S.BuiltinOperator.CONV_2D, [cur, kt, bt], [nxt], S.BuiltinOptions.Conv2DOptions, opt)
            cur = nxt
        elif kind == "MaxPooling2D":
            shape = [1, *l.compute_output_shape(tuple(shape[1:]))]
            nxt = w.tensor(l.name, shape)
            pad = S.Padding.SAME if l.padding == "same" else S.Padding.VALID
            ps, st = l.pool_size, l.strides

            def opt(b, pad=pad, ps=ps, st=st):
                S.Pool2DOptionsStart(b); S.Pool2DOptionsAddPadding(b, pad)
                S.Pool2DOptionsAddStrideH(b, st[0]); S.Pool2DOptionsAddStrideW(b, st[1])
                S.Pool2DOptionsAddFilterHeight(b, ps[0]); S.Pool2DOptionsAddFilterWidth(b, ps[1])
                return S.Pool2DOptionsEnd(b)
            w.op(S.BuiltinOperator.MAX_POOL_2D, [cur], [nxt], S.BuiltinOptions.Pool2DOptions, opt)
            cur = nxt
        elif kind == "Flatten":
            n = int(np.prod(shape[1:]))
            shape = [1, n]
            st = w.tensor(l.name + "/shape", [2], np.array([-1, n], np.int32))
            nxt = w.tensor(l.name, shape)
            w.op(S.BuiltinOperator.RESHAPE, [cur, st], [nxt])
            cur = nxt
        elif kind == "Dense":
            k, bias = l.get_weights()
            kt = w.tensor(l.name + "/kernel", k.T.shape, np.ascontiguousarray(k.T, np.float32))
            bt = w.tensor(l.name + "/bias", bias.shape, bias.astype(np.float32))
            shape = [1, l.units]
            nxt = w.tensor(l.name, shape)
            act = ACT[l.activation]

            def opt(b, act=act):
                S.FullyConnectedOptionsStart(b)
                S.FullyConnectedOptionsAddFusedActivationFunction(b, act)
                return S.FullyConnectedOptionsEnd(b)
            w.op(S.BuiltinOperator.FULLY_CONNECTED, [cur, kt, bt], [nxt],
                 S.BuiltinOptions.FullyConnectedOptions, opt)
            cur = nxt
        else:
            raise ValueError(f"no TFLite op for {kind} '{l.name}'")
    return w.finish(inp, cur, "keras_tensor", "output_0")


if __name__ == "__main__":
    import catdog
    from catdog import layers
    from ai_edge_litert.interpreter import Interpreter

    catdog.utils.set_random_seed(3)
    data_augmentation = catdog.Sequential([layers.RandomFlip("horizontal", input_shape=(180, 180, 3)),
                                           layers.RandomRotation(0.1), layers.RandomZoom(0.1)])
    model = catdog.Sequential([data_augmentation, layers.Rescaling(1./255),
        layers.Conv2D(16, 3, padding='same', activation='relu'), layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding='same', activation='relu'), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding='same', activation='relu'), layers.MaxPooling2D(),
        layers.Dropout(0.2), layers.Flatten(), layers.Dense(128, activation='relu'),
        layers.Dense(2, name="outputs")])
    x = np.random.default_rng(0).uniform(0, 255, (1, 180, 180, 3)).astype(np.float32)
    y = model.predict(x, verbose=0)
    tflite_model = convert(model)
    runner = Interpreter(model_content=tflite_model).get_signature_runner("serving_default")
    p = runner(keras_tensor=x)["output_0"]
    print("%d bytes; LiteRT %s, catdog %s, max |difference| %.2e"
          % (len(tflite_model), p.ravel(), y.ravel(), np.max(np.abs(p - y))))
