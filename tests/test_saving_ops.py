"""Tensor arithmetic and every activation in `.keras` files, both ways.

Keras 3 records `x + 3.0`, `3.0 - x`, `x * y`, `-x`, `x / 2.0` on KerasTensors as
operations (keras/src/backend/common/keras_tensor.py calls keras.ops.Add() ...): entries of the
functional config with module `keras.src.ops.numpy`, config `{"name"}` and the call's
arguments in the order written (keras/src/models/functional.py `serialize_node`). They are
not layers (Functional.layers lists Layer instances only). catdog runs them as its own tensor
arithmetic (catdog/layers/operations.py) and writes them back the same way.

Fixtures: tests/fixtures/make_ops_saving_fixtures.py (TensorFlow 2.21 / Keras 3.15): a
MobileNetV3-style block (ops_mnv3.keras), one file per activation (act_<name>.keras), and
three-input merges with Concatenate on each axis (merge_nary.keras).
TensorFlow loading catdog's files: benchmarks/check_keras_saving.py."""
import json
import os
import zipfile

import numpy as np
import pytest

import catdog
from catdog import layers
from catdog.saving.serialization import ConfigError
from conftest import assert_close_rel
from test_saving import _diffs, _norm

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_saving")
IO = np.load(os.path.join(FIX, "ops_io.npz"))
ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "softmax", "silu", "hard_sigmoid",
               "hard_silu", "gelu", "elu", "selu", "softplus", "linear"]
REL = 1e-5


def config_of(path):
    return json.loads(zipfile.ZipFile(path).read("config.json"))


def op_calls(config):
    """[(class_name, args with tensors as their producer's name)] of the ops in a config."""
    out = []
    for entry in config["config"]["layers"]:
        if entry["module"] == "keras.src.ops.numpy":
            args = [a["config"]["keras_history"][0] if isinstance(a, dict) else a
                    for a in entry["inbound_nodes"][0]["args"]]
            out.append((entry["class_name"], entry["name"], args))
    return out


def test_keras_ops_file_loads_and_predicts_as_keras():
    name = "ops_mnv3.keras"
    model = catdog.models.load_model(os.path.join(FIX, name))
    assert_close_rel(model.predict(IO["x/" + name], verbose=0), IO["pred/" + name], REL, name)
    keras_cfg = config_of(os.path.join(FIX, name))
    keras_layers = [e["name"] for e in keras_cfg["config"]["layers"]
                    if e["module"] != "keras.src.ops.numpy"]
    assert [layer.name for layer in model.layers] == keras_layers  # operations are not layers
    ops = [t.layer for t in model._nodes if getattr(t.layer, "is_operation", False)]
    assert [(op.keras_op, op.name) for op in ops] == [(c, n) for c, n, _ in op_calls(keras_cfg)]
    assert {op.keras_op for op in ops} == {"Add", "Subtract", "Multiply", "TrueDivide", "Negative"}


def test_catdog_resave_of_keras_ops_is_keras_config(tmp_path):
    """The re-saved config.json equals Keras's (constants, their side, an int kept an int)."""
    name = "ops_mnv3.keras"
    model = catdog.models.load_model(os.path.join(FIX, name))
    model.save(tmp_path / name)
    ours, theirs = config_of(tmp_path / name), config_of(os.path.join(FIX, name))
    assert op_calls(ours) == op_calls(theirs)
    assert [d for d in _diffs(_norm(ours), _norm(theirs))
            if not d.endswith("/kwargs/training: only in keras")] == []
    # `2 * x`: the int on the left, an int; `3.0 - x`: the float on the left
    assert [(c, a[0]) for c, _, a in op_calls(ours) if not isinstance(a[0], str)] == [
        ("Subtract", 3.0), ("Multiply", 2)]
    assert [type(a[0]) for c, _, a in op_calls(ours) if not isinstance(a[0], str)] == [float, int]
    again = catdog.models.load_model(tmp_path / name)
    x = IO["x/" + name]
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def build_ops_model():
    """make_ops_saving_fixtures.py's build_ops(), written with catdog for keras."""
    inputs = catdog.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = x * (layers.ReLU(6.0, name="hs_relu6")(x + 3.0) * (1.0 / 6.0))
    s = layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    s = layers.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = layers.Conv2D(8, 1, name="se_expand")(s)
    s = layers.ReLU(6.0, name="se_relu6")(s + 3.0) * (1.0 / 6.0)
    x = layers.Multiply(name="se_mul")([x, s])
    y = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = x - y
    x = 3.0 - x
    x = -x / 2.0
    x = 2 * x + y
    x = x * s
    out = layers.Dense(3, name="head")(layers.GlobalAveragePooling2D(name="pool")(x))
    return catdog.Model(inputs, out, name="ops_mnv3")


def test_catdog_built_arithmetic_saves_as_keras_records_it(tmp_path):
    """A model written with catdog's own arithmetic: the file's operations are Keras's (same
    classes, constants, sides and producers, up to the automatic names) and it loads back
    with the same predictions; with Keras's weights it predicts as Keras."""
    keras_model = catdog.models.load_model(os.path.join(FIX, "ops_mnv3.keras"))
    model = build_ops_model()
    for layer in model.layers:
        if layer._weights:
            layer.set_weights(keras_model.get_layer(layer.name).get_weights())
    x = IO["x/ops_mnv3.keras"]
    assert_close_rel(model.predict(x, verbose=0), IO["pred/ops_mnv3.keras"], REL, "catdog-built")
    model.save(tmp_path / "m.keras")
    ours, theirs = config_of(tmp_path / "m.keras"), config_of(os.path.join(FIX, "ops_mnv3.keras"))
    rename = {o: t for (_, o, _), (_, t, _) in zip(op_calls(ours), op_calls(theirs))}
    # our automatic names (numbered by what the process built before) renamed to Keras's
    assert [(c, rename.get(n, n), [rename.get(a, a) if isinstance(a, str) else a for a in args])
            for c, n, args in op_calls(ours)] == [(c, n, args) for c, n, args in op_calls(theirs)]
    # Keras's own entries for the same calls, name aside
    by_class = [(e["module"], e["class_name"], e["registered_name"], sorted(e["config"]))
                for e in ours["config"]["layers"] if e["module"] == "keras.src.ops.numpy"]
    assert by_class == [(e["module"], e["class_name"], e["registered_name"], sorted(e["config"]))
                        for e in theirs["config"]["layers"] if e["module"] == "keras.src.ops.numpy"]
    again = catdog.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_each_activation_both_ways(act, tmp_path):
    """Keras's file with `act` on Conv2D, DepthwiseConv2D, SeparableConv2D, Activation and
    Dense predicts as Keras; catdog's re-save writes Keras's activation names and loads back."""
    name = f"act_{act}.keras"
    model = catdog.models.load_model(os.path.join(FIX, name))
    x = IO["x/" + name]
    want = IO["pred/" + name]
    assert np.abs(want).max() > 1e-3
    assert_close_rel(model.predict(x, verbose=0), want, REL, name)
    model.save(tmp_path / name)
    ours, theirs = config_of(tmp_path / name), config_of(os.path.join(FIX, name))
    assert [d for d in _diffs(_norm(ours), _norm(theirs))
            if not d.endswith("/kwargs/training: only in keras")] == []
    again = catdog.models.load_model(tmp_path / name)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def build_merge_model(input_name):
    """make_ops_saving_fixtures.py's build_merge(), with catdog for keras."""
    inputs = catdog.Input((6, 6, 3), name=input_name)
    a = layers.Conv2D(4, 1, name="a")(inputs)
    b = layers.Conv2D(4, 3, padding="same", name="b")(inputs)
    c = layers.Conv2D(4, 1, activation="tanh", name="c")(inputs)
    merged = [layers.Add(name="add3")([a, b, c]), layers.Maximum(name="max3")([a, b, c]),
              layers.Minimum(name="min3")([a, b, c]), layers.Average(name="avg3")([a, b, c])]
    x = layers.Concatenate(name="cat_c")(merged)
    h = layers.Concatenate(axis=1, name="cat_h")([a, b])
    w = layers.Concatenate(axis=-2, name="cat_w")([b, c])
    v = layers.Concatenate(name="cat_v")([layers.GlobalAveragePooling2D(name="gap")(x),
                                          layers.Flatten(name="flat_h")(h),
                                          layers.Flatten(name="flat_w")(w)])
    return catdog.Model(inputs, layers.Dense(3, name="head")(v), name="merge_nary")


def test_concatenate_and_merges_of_three_both_ways(tmp_path):
    """Keras's file with Add / Maximum / Minimum / Average of three inputs and Concatenate on
    axes -1, 1, -2 and of vectors (keras/src/layers/merging/) predicts as Keras; catdog's
    re-save is Keras's config; the same model built by catdog writes Keras's config, layer
    order and weight paths (tests/test_saving.py's _h5_layout)."""
    from test_saving import _h5_layout

    name = "merge_nary.keras"
    x, want = IO["x/" + name], IO["pred/" + name]
    model = catdog.models.load_model(os.path.join(FIX, name))
    assert_close_rel(model.predict(x, verbose=0), want, REL, name)
    assert [model.get_layer(n).axis for n in ("cat_c", "cat_h", "cat_w", "cat_v")] == [-1, 1, -2, -1]
    model.save(tmp_path / "resaved.keras")
    theirs = config_of(os.path.join(FIX, name))
    assert [d for d in _diffs(_norm(config_of(tmp_path / "resaved.keras")), _norm(theirs))] == []
    built = build_merge_model(model.layers[0].name)
    for layer in built.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    assert_close_rel(built.predict(x, verbose=0), want, REL, "catdog-built")
    built.save(tmp_path / "built.keras")
    assert [d for d in _diffs(_norm(config_of(tmp_path / "built.keras")), _norm(theirs))] == []
    h5 = [_h5_layout(zipfile.ZipFile(p).read("model.weights.h5"))
          for p in (tmp_path / "built.keras", os.path.join(FIX, name))]
    assert h5[0] == h5[1]
    again = catdog.models.load_model(tmp_path / "built.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), built.predict(x, verbose=0))


@pytest.mark.parametrize("axis", [0, True, 1.5, "x", 7])
def test_concatenate_axis_refused(tmp_path, axis):
    src = zipfile.ZipFile(os.path.join(FIX, "merge_nary.keras"))
    cfg = json.loads(src.read("config.json"))
    entry = next(e for e in cfg["config"]["layers"] if e["name"] == "cat_h")
    entry["config"]["axis"] = axis
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as z:
        for item in src.namelist():
            z.writestr(item, json.dumps(cfg) if item == "config.json" else src.read(item))
    with pytest.raises(ConfigError, match="cat_h"):
        catdog.models.load_model(path)


# ---- what catdog refuses, naming the operation --------------------------------------------
def _with_op(tmp_path, class_name, args, kwargs=None):
    """ops_mnv3.keras with its first operation's call replaced."""
    src = zipfile.ZipFile(os.path.join(FIX, "ops_mnv3.keras"))
    cfg = json.loads(src.read("config.json"))
    entry = next(e for e in cfg["config"]["layers"] if e["module"] == "keras.src.ops.numpy")
    tensor = next(a for a in entry["inbound_nodes"][0]["args"] if isinstance(a, dict))
    entry["class_name"] = entry["registered_name"] = class_name
    entry["inbound_nodes"][0]["args"] = [tensor if a == "T" else a for a in args]
    entry["inbound_nodes"][0]["kwargs"] = kwargs or {}
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as z:
        for item in src.namelist():
            z.writestr(item, json.dumps(cfg) if item == "config.json" else src.read(item))
    return path, entry["name"]


@pytest.mark.parametrize("class_name,args,kwargs,match", [
    ("TrueDivide", [1.0, "T"], None, "divided by a tensor"),
    ("TrueDivide", ["T", "T"], None, "cannot divide two tensors"),
    ("TrueDivide", ["T", 0.0], None, "division by 0"),
    ("Add", ["T", True], None, "tensors and finite numbers"),
    ("Add", ["T", "3"], None, "tensors and finite numbers"),
    ("Add", [1.0, 2.0], None, "two numbers"),
    ("Add", ["T"], None, "takes 2 argument"),
    ("Negative", ["T", 1.0], None, "takes 1 argument"),
    ("Add", ["T", 1.0], {"dtype": "float16"}, "keyword arguments"),
    ("Power", ["T", 2.0], None, "Power"),
])
def test_unsupported_operations_are_refused_naming_them(tmp_path, class_name, args, kwargs, match):
    path, name = _with_op(tmp_path, class_name, args, kwargs)
    with pytest.raises(ConfigError, match=match) as e:
        catdog.models.load_model(path)
    assert name in str(e.value) or class_name == "Power"


def test_operation_get_config_is_keras_s():
    """Keras's Operation.get_config is {"name": ...} (keras/src/ops/operation.py)."""
    x = catdog.Input((4, 4, 2))
    y = x + 3.0
    assert y.layer.get_config() == {"name": y.layer.name}
    assert y.layer.keras_op == "Add" and (y.layer.constant, y.layer.reverse) == (3.0, False)
    z = 1.5 * x
    assert (z.layer.keras_op, z.layer.constant, z.layer.reverse) == ("Multiply", 1.5, True)
    assert (x / 4).layer.name.startswith("true_divide")
