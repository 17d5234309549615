#!/usr/bin/env python3
"""Coverage-guided fuzzing of catdog's `.keras` loader with atheris (libFuzzer for Python),
as csrc/fuzz/fuzz_decode.c fuzzes the image decoder.

    .venv/bin/pip install atheris          # not a catdog dependency
    .venv/bin/python scripts/fuzz_keras_load.py config  -max_total_time=300 /tmp/fz_config
    .venv/bin/python scripts/fuzz_keras_load.py archive -max_total_time=300 /tmp/fz_archive

Targets (catdog.saving is instrumented for coverage):

* `config`: the input picks one of the seed configs (small models written by catdog, the
  Keras-made cnn_seq.keras, layers_cnn.keras, ops_mnv3.keras, merge_nary.keras,
  layers_model.keras and caffe_free.keras configs: issue 22's layers, keras.ops arithmetic,
  Concatenate, Normalization, Resizing, dilation / groups, the "caffe" GetItem / Stack / Add
  of a constant tensor on a free input size) and a list of mutations (replace
  any value in the JSON tree with a number, string, list, object, null, a huge or
  non-finite number, a class name from the registry or outside it; delete a key; duplicate
  a layer), or, for one input in eight, is parsed as raw JSON text; then `model_from_json`.
* `archive`: a whole `.keras` file: one input in four is raw bytes; the others rebuild a
  seed archive (the two small catdog models, valid zip) with its config mutated as above,
  its weights' bytes damaged and truncated, or its weights rebuilt with a dataset of another
  shape / dtype or a stray group or attribute; then `keras_format.load_bytes` (members are
  read in memory; nothing is written).

A finding is any exception other than ValueError (ConfigError and safety's refusals are
ValueErrors) or ImportError: TypeError, KeyError, AttributeError, IndexError,
RecursionError, MemoryError, ... — the loader must turn every bad input into a clear
ValueError. The bound on declared weights is lowered to 2**20 here so that a mutated size
fails fast instead of allocating the 1 GiB the real bound allows.
"""
import io
import json
import os
import sys
import zipfile

import atheris

with atheris.instrument_imports(include=["catdog.saving"]):
    import catdog
    from catdog import layers
    from catdog.saving import keras_format, serialization

serialization.MAX_PARAMS = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "keras_saving")


def _seed_models():
    catdog.random.set_seed(1)
    seq = catdog.Sequential([
        catdog.Input((32, 32, 3)), layers.Rescaling(1 / 255), layers.Conv2D(2, 3),
        layers.BatchNormalization(), layers.ReLU(6.0), layers.ZeroPadding2D(((0, 1), (0, 1))),
        layers.DepthwiseConv2D(3, strides=2), layers.MaxPooling2D(),
        layers.AveragePooling2D(padding="same"), layers.GlobalAveragePooling2D(),
        layers.Dropout(0.1), layers.Dense(2, activation="softmax")], name="seq")
    seq.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    inp = catdog.Input((32, 32, 3))
    x = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2),
                           layers.RandomZoom(0.1), layers.RandomTranslation(0.1, 0.1)])(inp)
    x = layers.Conv2D(4, 3, padding="same", use_bias=False)(x)
    y = layers.Conv2D(4, 1)(x)
    x = layers.Add()([x, y])
    inner_in = catdog.Input((32, 32, 4))
    inner = catdog.Model(inner_in, layers.ReLU()(inner_in), name="inner")
    x = inner(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    fun = catdog.Model(inp, layers.Dense(1)(x), name="fun")
    fun.compile(optimizer=catdog.optimizers.RMSprop(1e-3),
                loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
    return [seq, fun]


MODELS = _seed_models()
CONFIGS = [json.loads(m.to_json()) for m in MODELS]
# Keras-made configs: a Sequential CNN, issue 22's layers, tensor arithmetic (keras.ops calls)
for _name in ("cnn_seq.keras", "layers_cnn.keras", "ops_mnv3.keras", "merge_nary.keras",
              "layers_model.keras", "caffe_free.keras"):
    with zipfile.ZipFile(os.path.join(FIX, _name)) as _zf:
        CONFIGS.append(json.loads(_zf.read("config.json")))
PARTS = [{"metadata.json": '{"keras_version": "3.15.1"}', "config.json": keras_format.to_json(m),
          "model.weights.h5": keras_format._h5_bytes(m)} for m in MODELS]
NAMES = sorted(serialization.REGISTRY) + ["Lambda", "__lambda__", "Functional", "Sequential",
                                          "InputLayer", "LSTM", "TrueDivide", "Subtract",
                                          "Add", "Multiply", "Negative", "Power"]
MODULES = ["keras", "keras.layers", "keras.src.ops.numpy", "keras.src.models.functional",
           "os", "builtins", None]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _value(fdp, depth=0):
    kind = fdp.ConsumeIntInRange(0, 12)
    if kind == 0:
        return fdp.ConsumeInt(8)
    if kind == 1:
        return fdp.ConsumeRegularFloat()
    if kind == 2:
        return fdp.PickValueInList([float("nan"), float("inf"), -1, 0, 1 << 62, 1e308, -0.0])
    if kind == 3:
        return fdp.ConsumeUnicodeNoSurrogates(12)
    if kind == 4:
        return None
    if kind == 5:
        return fdp.ConsumeBool()
    if kind == 6 and depth < 3:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    if kind == 7 and depth < 3:
        return {fdp.ConsumeUnicodeNoSurrogates(6): _value(fdp, depth + 1)
                for _ in range(fdp.ConsumeIntInRange(0, 3))}
    if kind == 8:
        return fdp.PickValueInList(NAMES)
    if kind == 9:
        return fdp.PickValueInList(MODULES)
    if kind == 10:
        return {"module": fdp.PickValueInList(MODULES), "class_name": fdp.PickValueInList(NAMES),
                "config": {"name": fdp.ConsumeUnicodeNoSurrogates(6)}, "registered_name": None}
    if kind == 11:
        return [None, fdp.ConsumeIntInRange(0, 70000), fdp.ConsumeIntInRange(0, 70000), 3]
    return fdp.ConsumeIntInRange(-3, 300)


def _mutate(cfg, fdp):
    paths = list(_paths(cfg))
    for _ in range(fdp.ConsumeIntInRange(1, 6)):
        path = fdp.PickValueInList(paths)
        if not path:
            continue
        parent = cfg
        try:
            for p in path[:-1]:
                parent = parent[p]
            op = fdp.ConsumeIntInRange(0, 3)
            if op == 0 and isinstance(parent, dict):
                del parent[path[-1]]
            elif op == 1 and isinstance(parent, list):
                parent.insert(path[-1], json.loads(json.dumps(parent[path[-1]])))
            else:
                parent[path[-1]] = _value(fdp)
        except (KeyError, IndexError, TypeError):
            continue
    return cfg


EXPECTED = (ValueError, ImportError)


def config_target(data):
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeIntInRange(0, 7) == 0:
        text = fdp.ConsumeUnicodeNoSurrogates(len(data))
    else:
        cfg = json.loads(json.dumps(CONFIGS[fdp.ConsumeIntInRange(0, len(CONFIGS) - 1)]))
        text = json.dumps(_mutate(cfg, fdp), allow_nan=True)
    try:
        keras_format.from_json(text)
    except EXPECTED:
        pass


def _zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _h5_edit(h5, fdp):
    """Rebuild the weights with one dataset replaced by an array of another shape / dtype,
    or an attribute / group added."""
    import h5py
    import numpy as np

    out = io.BytesIO()
    with h5py.File(io.BytesIO(h5), "r") as f, h5py.File(out, "w") as g:
        for k in f:
            f.copy(k, g)
        names = []
        g.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        op = fdp.ConsumeIntInRange(0, 3)
        if names and op < 2:
            name = fdp.PickValueInList(names)
            del g[name]
            shape = tuple(fdp.ConsumeIntInRange(0, 5) for _ in range(fdp.ConsumeIntInRange(0, 4)))
            dtype = fdp.PickValueInList(["f4", "f8", "f2", "i4", "u1", "S3", "b1", "c8"])
            g.create_dataset(name, data=np.zeros(shape, dtype))
        elif op == 2:
            g.create_group(fdp.PickValueInList(["vars", "layers/x/vars", "layers/dense/vars/9",
                                                "optimizer/vars"]) + "/" + str(fdp.ConsumeIntInRange(0, 9)))
        else:
            g.attrs["name"] = np.frombuffer(fdp.ConsumeBytes(8), np.uint8)  # not a string
    return out.getvalue()


def archive_target(data):
    """A whole .keras file: raw bytes (1 in 4), or a seed archive rebuilt (valid zip) with its
    config mutated, its weights' bytes damaged, or its weights rebuilt with a bad dataset."""
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:
        blob = fdp.ConsumeBytes(len(data))
    else:
        members = dict(PARTS[fdp.ConsumeIntInRange(0, len(PARTS) - 1)])
        if mode == 1:
            cfg = _mutate(json.loads(members["config.json"]), fdp)
            members["config.json"] = json.dumps(cfg)
        elif mode == 2:
            w = bytearray(members["model.weights.h5"])
            for _ in range(fdp.ConsumeIntInRange(1, 8)):
                pos = fdp.ConsumeIntInRange(0, len(w) - 1)
                w[pos] = fdp.ConsumeIntInRange(0, 255)
            members["model.weights.h5"] = bytes(w[:fdp.ConsumeIntInRange(0, len(w))])
        else:
            members["model.weights.h5"] = _h5_edit(members["model.weights.h5"], fdp)
        blob = _zip(members)
    try:
        keras_format.load_bytes("fuzz.keras", blob)
    except EXPECTED:
        pass


def main():
    target = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    if target not in ("config", "archive"):
        sys.exit("usage: fuzz_keras_load.py config|archive [libFuzzer options] [corpus dir]")
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    atheris.Setup(sys.argv, config_target if target == "config" else archive_target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
