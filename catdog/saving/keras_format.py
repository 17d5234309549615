"""`model.save("x.keras")` and `catdog.models.load_model("x.keras")`: Keras 3's whole-model
format (keras/src/saving/saving_lib.py `save_model` / `load_model`).

The file is a zip of three members, stored uncompressed as Keras writes them:
`metadata.json` ({"keras_version", "date_saved"}), `config.json` (the model's config, see
serialization.py, with its compile_config) and `model.weights.h5` (the weights in Keras 3's
`.weights.h5` layout: a `vars` group per layer at the path made of class names, as
catdog/checkpoint.py computes it for `save_weights`).

Saving is atomic: the zip is written to a temp file beside the target and renamed over it, so
a crash mid-write leaves the old file intact (as `save_weights`).

Loading reads the members into memory through safety.py (never extracting anything), builds
the model from its config (nothing a file names is imported or called), then checks every
weight against the model before setting any: present, numeric, finite, of the shape the
config implies. With compile=True the model is compiled with the saved arguments and the
optimizer's state (`optimizer/vars`: iterations and slots, optimizer_state.py) is restored,
so training resumes where it stopped.
"""
from __future__ import annotations

import datetime
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from catdog.saving import safety
from catdog.saving.serialization import ConfigError, model_config, model_from_config

KERAS_VERSION = "3.15.1"  # the Keras whose format catdog writes and was checked against


def _weight_entries(model):
    from catdog import checkpoint

    return [(where, layer.name,
             [w for _, w, _ in layer._weights] if not checkpoint._is_container(layer) else [])
            for where, layer in checkpoint._keras3_entries(model)]


def _h5_bytes(model) -> bytes:
    import h5py

    from catdog.saving import optimizer_state

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for where, name, arrays in _weight_entries(model):
            g = f.create_group(f"{where}/vars" if where else "vars")
            g.attrs["name"] = name
            for i, a in enumerate(arrays):
                g.create_dataset(str(i), data=np.asarray(a, dtype=np.float32))
        state = optimizer_state.arrays_to_save(model)
        if state is not None:  # iterations int64, learning_rate float32, slots float32
            g = f.create_group("optimizer/vars")
            g.attrs["name"] = model._compiled.optimizer.name
            for i, a in enumerate(state):
                g.create_dataset(str(i), data=a)
    return buf.getvalue()


def save_model(model, path) -> Path:
    """Write `model` to `path` (must end in .keras) in Keras 3's format, atomically."""
    from catdog import h5io

    if not str(path).endswith(".keras"):
        raise ValueError(f"model.save: the file name must end in .keras (Keras 3's format), got "
                         f"{str(path)!r}; for weights only use save_weights('x.weights.h5')")
    model._sync()
    config = json.dumps(model_config(model))
    metadata = json.dumps({"keras_version": KERAS_VERSION,
                           "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")})
    weights = _h5_bytes(model)

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(safety.METADATA, metadata)
            zf.writestr(safety.CONFIG, config)
            zf.writestr(safety.WEIGHTS, weights)

    return h5io._atomic_write(path, write)


def to_json(model, **kwargs) -> str:
    """The Keras 3 config of `model` as JSON (keras Model.to_json)."""
    return json.dumps(model_config(model), **kwargs)


def from_json(text: str):
    try:
        cfg = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"model_from_json: not valid JSON ({e})") from None
    return model_from_config(cfg)


# ---- loading ------------------------------------------------------------------------------
_FLOAT_KINDS = "f"


def _read_weights(source, data: bytes):
    """{path: [arrays]} of every `.../vars` group in the h5 bytes; dtype and layout checked."""
    import h5py

    out = {}
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            def visit(name, obj):
                if not (isinstance(obj, h5py.Group) and (name == "vars" or name.endswith("/vars"))):
                    return
                keys = list(obj.keys())
                if any(not k.isdigit() or len(k) > 6 for k in keys):
                    raise ValueError(f"{source}: model.weights.h5 group {name!r} holds "
                                     f"entries other than 0, 1, ...: {keys[:3]}")
                arrays = []
                for k in sorted(keys, key=int):
                    d = obj[k]
                    if not isinstance(d, h5py.Dataset):
                        raise ValueError(f"{source}: {name}/{k} is not a dataset")
                    arrays.append(d)
                out[name[:-len("/vars")] if name != "vars" else ""] = arrays
                return None

            f.visititems(visit)
            loaded = {}
            for where, dsets in out.items():
                loaded[where] = [(d.name, d.dtype, d.shape, d) for d in dsets]
            # read the arrays now, while the file is open, checking the dtype first
            result = {}
            for where, items in loaded.items():
                arrays = []
                for j, (dname, dtype, shape, d) in enumerate(items):
                    if where == "optimizer" and j == 0:  # iterations: an integer scalar
                        if dtype.kind not in "iu" or shape != ():
                            raise ValueError(f"{source}: optimizer iterations ({dname}) must "
                                             f"be an integer scalar, got {dtype} {shape}")
                        arrays.append((dname, np.asarray(d[()], dtype=np.int64)))
                        continue
                    # integer scalars: Normalization's count (int64 in Keras's files)
                    if dtype.kind not in _FLOAT_KINDS and not (dtype.kind in "iu" and shape == ()):
                        raise ValueError(f"{source}: weight {dname} has dtype {dtype}, not a "
                                         "floating-point type")
                    if int(np.prod(shape, dtype=np.int64)) > (1 << 30):
                        raise ValueError(f"{source}: weight {dname} declares shape {shape}, "
                                         "larger than catdog's bound of 2**30 values")
                    arrays.append((dname, np.asarray(d[()], dtype=np.float32)))
                result[where] = arrays
            return result
    except ValueError:
        raise
    except (OSError, KeyError, RuntimeError, TypeError, IndexError) as e:
        raise ValueError(f"{source}: model.weights.h5 is corrupt or truncated "
                         f"({type(e).__name__}: {e})") from None


def _set_weights(source, model, store) -> None:
    from catdog import checkpoint

    plan = []
    for where, layer in checkpoint._keras3_entries(model):
        if checkpoint._is_container(layer) or not layer._weights:
            continue
        arrays = store.get(where)
        if arrays is None:
            raise ValueError(f"{source}: no weights for layer '{layer.name}' (Keras path "
                             f"'{where}/vars') in model.weights.h5")
        if len(arrays) != len(layer._weights):
            raise ValueError(f"{source}: layer '{layer.name}' has {len(layer._weights)} weights, "
                             f"model.weights.h5 has {len(arrays)} at '{where}/vars'")
        for (wname, old, _), (dname, a) in zip(layer._weights, arrays):
            if a.shape != old.shape:
                raise ValueError(f"{source}: layer '{layer.name}' weight '{wname}' has shape "
                                 f"{old.shape} from the config, {a.shape} in the file ({dname})")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{source}: layer '{layer.name}' weight '{wname}' has NaN or "
                                 "Inf values")
        plan.append((layer, [a for _, a in arrays]))
    for layer, arrays in plan:
        layer.set_weights(arrays)


def load_model(path, custom_objects=None, compile=True, safe_mode=True):
    """A catdog model from a Keras 3 `.keras` file (Keras's own or catdog's). compile=False
    leaves it uncompiled; custom objects and safe_mode=False are refused: loading never runs
    code from a file."""
    if custom_objects:
        raise ValueError("load_model: custom_objects are not supported: catdog builds only the "
                         "Keras layers it runs")
    if safe_mode is not True:
        raise ValueError("load_model: catdog has no unsafe mode (safe_mode must be True): "
                         "loading a file never runs code from it")
    source = str(path)
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{source} is a folder; load_model reads a .keras file")
    if not p.exists():
        raise FileNotFoundError(f"no such file: {source}")
    size = p.stat().st_size
    bound = safety.MAX_TOTAL_BYTES
    if size > bound:
        raise safety.UnsafeArchive(f"{source}: {size} bytes, more than catdog's bound of {bound}")
    with open(p, "rb") as f:
        data = f.read()
    return load_bytes(source, data, compile)


def load_bytes(source: str, data: bytes, compile=True):
    """load_model on the bytes of a .keras file; `source` names it in errors."""
    with safety.open_archive(source, data) as zf:
        raw_config = safety.read_member(source, zf, safety.CONFIG, safety.MAX_JSON_BYTES)
        weights = safety.read_member(source, zf, safety.WEIGHTS, safety.MAX_WEIGHTS_BYTES)
    try:
        config = json.loads(raw_config.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{source}: config.json is not valid JSON ({type(e).__name__}: "
                         f"{str(e)[:120]})") from None
    try:
        model = model_from_config(config)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    store = _read_weights(source, weights)
    _set_weights(source, model, store)
    if compile and isinstance(config, dict) and config.get("compile_config"):
        from catdog.saving import compile_config, optimizer_state

        try:
            compile_config.compile_from(model, config["compile_config"])
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        if store.get("optimizer"):
            optimizer_state.restore(source, model, [a for _, a in store["optimizer"]])
    return model
