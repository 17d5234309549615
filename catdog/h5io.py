"""Weights files: the Keras legacy HDF5 layout (read and write) and catdog's own format.

In memory, weights are an ordered mapping ``layer name -> [(weight name, float32 array)]``
(:data:`Weights`), in model order, layers without weights included (with an empty list).
Weight names drop the layer prefix and the ``:0`` suffix: ``Conv1/kernel:0`` in layer
``Conv1`` is ``kernel``; inside a nested model's group (the lab's whole-model file holds
``mobilenetv2_1.00_160`` with ``Conv1/kernel:0``, ...) the inner layer name stays:
``Conv1/kernel``.

Keras legacy HDF5 (what Keras 2 ``save_weights("x.h5")`` and every
``keras.applications`` download use): root attribute ``layer_names`` (+ ``backend``,
``keras_version``); one group per layer with attribute ``weight_names``; each weight a
dataset at ``<layer>/<weight name>`` (``Conv1/Conv1/kernel:0``). Long attributes are split
into ``layer_names0``, ``layer_names1``, ... as Keras does (HDF5's 64 KiB header limit).
Whole-model files (``model.save("x.h5")``) hold the same under the ``model_weights`` group.
The Keras 3 ``.weights.h5`` layout (``save_weights("x.weights.h5")``, read and written by
:func:`read_keras3` / :func:`write_keras3`; catdog/checkpoint.py maps it to a model): a group
per layer at a path made of the *class* names in the model's structure, counted per
container — ``layers/functional/layers/batch_normalization_3/vars/0`` is the fourth
BatchNormalization of the first nested Functional model; each ``.../vars`` group holds the
layer's variables as datasets ``0``, ``1``, ... (trainable first, in creation order) and an
attribute ``name`` (the layer's name; the root ``vars`` carries the model's).

catdog's own format (``.npz``/``.catdog`` or any name not ending in ``.h5``/``.hdf5``): a
NumPy ``.npz`` (uncompressed zip) holding arrays ``w00000``, ``w00001``, ... and
``__catdog__``, UTF-8 JSON as uint8: ``{"format": "catdog-weights", "version": 1,
"layers": [{"name": ..., "weights": [{"name": ..., "key": "w00000", "shape": [...],
"dtype": "float32"}]}], "metadata": {...}}``. Readable with plain NumPy, no pickle.

Every write goes to a temp file in the destination folder and is moved into place with
``os.replace``, so a crash never leaves a half-written weights file under the final name.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from catdog.download import _plain_mode

__all__ = [
    "Weights",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "read_weights",
    "read_keras_h5",
    "read_catdog",
    "write_weights",
    "write_keras_h5",
    "write_catdog",
    "check_weights",
    "count_values",
    "is_keras3",
    "read_keras3",
    "write_keras3",
]

PathLike = Union[str, "os.PathLike[str]"]
Weights = "OrderedDict[str, List[Tuple[str, np.ndarray]]]"
Expected = Sequence[Tuple[str, Sequence[Tuple[str, Sequence[int]]]]]

FORMAT_NAME = "catdog-weights"
FORMAT_VERSION = 1
_META_KEY = "__catdog__"
_HDF5_SIG = b"\x89HDF\r\n\x1a\n"
_ZIP_SIG = b"PK\x03\x04"
_HDF5_OBJECT_HEADER_LIMIT = 64512  # Keras splits attributes bigger than this
_SUFFIX = re.compile(r":\d+$")


# --------------------------------------------------------------------------- helpers


def _path(path: PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"weights file not found: {p}")
    if p.is_dir():
        raise ValueError(f"{p} is a folder, not a weights file")
    return p


def _save_attr_list(group, name: str, values: Sequence[str]) -> None:
    """Keras's save_attributes_to_hdf5_group: bytes array, split when too big for a header."""
    encoded = [v.encode("utf8") for v in values]
    width = max([len(v) for v in encoded] + [1])
    data = np.array(encoded, dtype=f"S{width}")
    if data.nbytes <= _HDF5_OBJECT_HEADER_LIMIT:
        group.attrs[name] = data
        return
    if width > _HDF5_OBJECT_HEADER_LIMIT:
        raise ValueError(f"a name in {name!r} is longer than {_HDF5_OBJECT_HEADER_LIMIT} bytes")
    chunks = 2
    while True:
        parts = np.array_split(data, chunks)
        if all(p.nbytes <= _HDF5_OBJECT_HEADER_LIMIT for p in parts):
            break
        chunks += 1
    for i, part in enumerate(parts):
        group.attrs[f"{name}{i}"] = part


def _short_name(layer: str, full: str) -> str:
    name = _SUFFIX.sub("", full)
    prefix = layer + "/"
    return name[len(prefix):] if name.startswith(prefix) else name


def _long_name(layer: str, short: str) -> str:
    return (short if "/" in short else f"{layer}/{short}") + ":0"


def _as_weights(weights: Mapping[str, Iterable[Tuple[str, Any]]]) -> "OrderedDict[str, List[Tuple[str, np.ndarray]]]":
    out: "OrderedDict[str, List[Tuple[str, np.ndarray]]]" = OrderedDict()
    for layer, ws in weights.items():
        if not isinstance(layer, str) or not layer or "/" in layer:
            raise ValueError(f"bad layer name {layer!r} (a non-empty string without '/')")
        items = []
        seen = set()
        for item in ws:
            try:
                wname, arr = item
            except (TypeError, ValueError):
                raise ValueError(f"layer {layer!r}: weights must be (name, array) pairs, got {item!r:.60}") from None
            if not isinstance(wname, str) or not wname or wname in seen:
                raise ValueError(f"layer {layer!r}: bad or repeated weight name {wname!r}")
            seen.add(wname)
            items.append((wname, np.asarray(arr, dtype=np.float32)))
        out[layer] = items
    return out


def _atomic_write(path: PathLike, write_fn) -> Path:
    """Call ``write_fn(tmp_path)`` on a temp file beside ``path``, then os.replace it."""
    dest = Path(path).expanduser()
    if dest.is_dir():
        raise ValueError(f"{dest} is a folder; give a file name")
    folder = dest.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"folder does not exist: {folder}")
    from catdog import _orphans  # temp files of killed writers: their pid is in the name

    _orphans.remove_dead(folder)
    fd, tmp_name = tempfile.mkstemp(prefix=_orphans.prefix(dest), suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_fn(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _plain_mode(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# --------------------------------------------------------------------------- reading


def _sniff(p: Path) -> str:
    with open(p, "rb") as f:
        head = f.read(8)
    if head == _HDF5_SIG:
        return "h5"
    if head[:4] == _ZIP_SIG:
        return "npz"
    import h5py

    try:  # HDF5 with a user block: signature at 512, 1024, ...
        if h5py.is_hdf5(str(p)):
            return "h5"
    except Exception:
        pass
    return "unknown"


def read_weights(path: PathLike) -> "OrderedDict[str, List[Tuple[str, np.ndarray]]]":
    """Read any supported weights file (detected by content, not by extension)."""
    p = _path(path)
    kind = _sniff(p)
    if kind == "h5":
        return read_keras_h5(p)
    if kind == "npz":
        return read_catdog(p)
    raise ValueError(
        f"{p}: not a weights file (neither HDF5 nor catdog's .npz format"
        + (", it is empty)" if p.stat().st_size == 0 else ")")
    )


def _open_checked(p: Path):
    """The file opened read-only after catdog/_h5safe.py's whole-file check."""
    import h5py

    from catdog import _h5safe

    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise ValueError(f"{p}: not a readable HDF5 file ({e})") from None
    try:
        _h5safe.check_file(f, str(p))
    except BaseException:
        f.close()
        raise
    return f


def _corrupt(p: Path, e: BaseException) -> ValueError:
    return ValueError(f"{p}: corrupt or truncated HDF5 weights file ({type(e).__name__}: {e})")


def read_keras_h5(path: PathLike) -> "OrderedDict[str, List[Tuple[str, np.ndarray]]]":
    """Read the Keras legacy HDF5 weights layout (a weights file or a whole-model .h5).
    Every layer and weight listed must exist, once; see catdog/_h5safe.py for what a file
    and its weights must be."""
    import h5py

    from catdog import _h5safe

    p = _path(path)
    where = str(p)
    try:
        with _open_checked(p) as f:
            root = f
            names = _h5safe.name_list(root, "layer_names", where)
            if names is None and isinstance(f.get("model_weights"), h5py.Group):
                root = f["model_weights"]
                names = _h5safe.name_list(root, "layer_names", where)
            if names is None:
                if "layers" in f or "vars" in f:
                    raise ValueError(
                        f"{p}: this is the Keras 3 '.weights.h5' layout, which names layers by "
                        "their place in the model: load it with model.load_weights(path)"
                    )
                raise ValueError(f"{p}: an HDF5 file but not Keras weights (no 'layer_names' attribute)")
            out: "OrderedDict[str, List[Tuple[str, np.ndarray]]]" = OrderedDict()
            for layer in names:
                if not layer or "/" in layer or layer == ".":
                    raise ValueError(f"{p}: layer_names lists {layer!r}, not a layer name")
                if layer in out:
                    raise ValueError(f"{p}: layer {layer!r} is listed twice in layer_names")
                g = _h5safe.child(root, layer, where)
                if g is None:
                    raise ValueError(f"{p}: layer {layer!r} is listed in layer_names but has no group")
                if not isinstance(g, h5py.Group):
                    raise ValueError(f"{p}: layer {layer!r} is a {type(g).__name__}, not a group")
                wnames = _h5safe.name_list(g, "weight_names", where) or []
                items = []
                for wn in wnames:
                    ds = _h5safe.child(g, wn, where)
                    if ds is None:
                        raise ValueError(f"{p}: weight {wn!r} of layer {layer!r} is listed but missing")
                    if not isinstance(ds, h5py.Dataset):
                        raise ValueError(f"{p}: {layer}/{wn} is not a dataset")
                    short = _short_name(layer, wn)
                    if any(short == n for n, _ in items):
                        raise ValueError(f"{p}: layer {layer!r} lists weight {short!r} twice "
                                         f"(weight_names: {_first(wnames)})")
                    label = f"layer {layer!r}, weight {short!r}"
                    items.append((short, _h5safe.read_array(ds, label, where)))
                out[layer] = items
            return out
    except UnicodeError as e:
        raise _corrupt(p, e) from None
    except ValueError:
        raise
    except (OSError, KeyError, RuntimeError, TypeError, IndexError, AttributeError) as e:
        raise _corrupt(p, e) from None


def read_catdog(path: PathLike, *, with_metadata: bool = False):
    """Read catdog's .npz weights file. With ``with_metadata=True``: (weights, metadata dict)."""
    from catdog import _h5safe

    p = _path(path)
    with open(p, "rb") as fh:
        if fh.read(4) != _ZIP_SIG:
            raise ValueError(f"{p}: not a catdog weights file (a .npz zip)")
    try:
        with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            if _META_KEY not in z.files:
                raise ValueError(f"{p}: a .npz file but not catdog weights (no {_META_KEY!r} entry)")
            meta = json.loads(bytes(z[_META_KEY]).decode("utf8"))
            if meta.get("format") != FORMAT_NAME:
                raise ValueError(f"{p}: format {meta.get('format')!r}, expected {FORMAT_NAME!r}")
            if int(meta.get("version", 0)) > FORMAT_VERSION:
                raise ValueError(
                    f"{p}: catdog weights format version {meta.get('version')} is newer than this "
                    f"catdog reads ({FORMAT_VERSION}); upgrade catdog"
                )
            out: "OrderedDict[str, List[Tuple[str, np.ndarray]]]" = OrderedDict()
            for layer in meta["layers"]:
                items = []
                for w in layer["weights"]:
                    arr = _h5safe.to_float32(np.asarray(z[w["key"]]),
                                             f"layer {layer['name']!r}, weight {w['name']!r}", str(p))
                    if list(arr.shape) != list(w["shape"]):
                        raise ValueError(f"{p}: {layer['name']}/{w['name']} has shape {arr.shape}, header says {tuple(w['shape'])}")
                    items.append((w["name"], arr))
                out[layer["name"]] = items
    except ValueError:
        raise
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError, TypeError, UnicodeDecodeError, EOFError) as e:
        raise ValueError(f"{p}: corrupt catdog weights file ({type(e).__name__}: {e})") from None
    return (out, meta.get("metadata", {})) if with_metadata else out


# --------------------------------------------------------------------------- writing


def write_keras_h5(
    path: PathLike,
    weights: Mapping[str, Iterable[Tuple[str, Any]]],
    *,
    keras_version: str = "2.15.0",
    backend: str = "tensorflow",
) -> Path:
    """Write ``weights`` in the Keras legacy HDF5 layout (loadable by Keras 2 load_weights)."""
    import h5py

    ws = _as_weights(weights)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            _save_attr_list(f, "layer_names", list(ws))
            f.attrs["backend"] = backend.encode("utf8")
            f.attrs["keras_version"] = keras_version.encode("utf8")
            for layer, items in ws.items():
                g = f.create_group(layer)
                long_names = [_long_name(layer, n) for n, _ in items]
                _save_attr_list(g, "weight_names", long_names)
                for ln, (_, arr) in zip(long_names, items):
                    g.create_dataset(ln, data=arr)

    return _atomic_write(path, write)


def write_catdog(
    path: PathLike,
    weights: Mapping[str, Iterable[Tuple[str, Any]]],
    *,
    metadata: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write catdog's own .npz weights file (``metadata``: any JSON-serialisable dict)."""
    ws = _as_weights(weights)
    arrays: Dict[str, np.ndarray] = {}
    layers = []
    for layer, items in ws.items():
        entry = {"name": layer, "weights": []}
        for wname, arr in items:
            key = f"w{len(arrays):05d}"
            arrays[key] = arr
            entry["weights"].append({"name": wname, "key": key, "shape": list(arr.shape), "dtype": "float32"})
        layers.append(entry)
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "layers": layers, "metadata": metadata or {}}
    try:
        blob = json.dumps(meta).encode("utf8")
    except TypeError as e:
        raise ValueError(f"metadata must be JSON-serialisable: {e}") from None
    arrays[_META_KEY] = np.frombuffer(blob, dtype=np.uint8)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return _atomic_write(path, write)


def write_weights(
    path: PathLike,
    weights: Mapping[str, Iterable[Tuple[str, Any]]],
    *,
    format: Optional[str] = None,
    metadata: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write by ``format`` ("keras" or "catdog"), else by extension: .h5/.hdf5 -> Keras."""
    fmt = format
    if fmt is None:
        fmt = "keras" if str(path).lower().endswith((".h5", ".hdf5")) else "catdog"
    if fmt in ("keras", "h5"):
        return write_keras_h5(path, weights)
    if fmt == "catdog":
        return write_catdog(path, weights, metadata=metadata)
    raise ValueError(f"format must be 'keras' or 'catdog', got {format!r}")


# --------------------------------------------------------------------------- checking


def _first(names: Sequence[str], k: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:k])
    return shown + (f", ... ({len(names)} in all)" if len(names) > k else "")


def check_weights(
    weights: Mapping[str, Sequence[Tuple[str, np.ndarray]]],
    expected: Expected,
    *,
    source: Optional[PathLike] = None,
    by_name: bool = True,
) -> "OrderedDict[str, List[Tuple[str, np.ndarray]]]":
    """Match file ``weights`` to a model's ``expected`` [(layer, [(weight, shape)])].

    Only layers that hold weights count (input, activation, padding, add layers may differ).
    ``by_name=True`` matches layers and weights by name; ``by_name=False`` by position, as
    Keras's default ``load_weights`` does for h5 files (layer names may differ, the number of
    weighted layers, of weights per layer, and every shape must agree). Returns the arrays
    in ``expected`` order under the expected names; raises ValueError naming the first
    missing/extra layers, or the layer, weight and both shapes of a mismatch.
    """
    where = f"{source}: " if source is not None else ""
    have = [(layer, list(ws)) for layer, ws in weights.items() if len(ws) > 0]
    want = [(layer, list(ws)) for layer, ws in expected if len(ws) > 0]
    pairs: List[Tuple[str, List[Tuple[str, Sequence[int]]], str, List[Tuple[str, np.ndarray]]]] = []
    if by_name:
        have_map = dict(have)
        want_names = [layer for layer, _ in want]
        missing = [n for n in want_names if n not in have_map]
        extra = [n for n, _ in have if n not in set(want_names)]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing layers {_first(missing)}")
            if extra:
                parts.append(f"unexpected layers {_first(extra)}")
            raise ValueError(f"{where}the weights do not match the model: " + "; ".join(parts))
        pairs = [(layer, ws, layer, have_map[layer]) for layer, ws in want]
    else:
        if len(have) != len(want):
            raise ValueError(
                f"{where}the model has {len(want)} layers with weights, the file {len(have)} "
                f"(model: {_first([n for n, _ in want], 3)}; file: {_first([n for n, _ in have], 3)})"
            )
        pairs = [(wl, ws, hl, hs) for (wl, ws), (hl, hs) in zip(want, have)]

    out: "OrderedDict[str, List[Tuple[str, np.ndarray]]]" = OrderedDict()
    for want_layer, want_ws, have_layer, have_ws in pairs:
        label = want_layer if want_layer == have_layer else f"{want_layer} (file: {have_layer})"
        if by_name:
            hmap = dict(have_ws)
            wnames = [w for w, _ in want_ws]
            missing = [w for w in wnames if w not in hmap]
            extra = [w for w, _ in have_ws if w not in set(wnames)]
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"missing weights {_first(missing)}")
                if extra:
                    parts.append(f"unexpected weights {_first(extra)}")
                raise ValueError(f"{where}layer {label}: " + "; ".join(parts))
            arrays = [hmap[w] for w in wnames]
        else:
            if len(have_ws) != len(want_ws):
                raise ValueError(
                    f"{where}layer {label}: the model has {len(want_ws)} weights, the file {len(have_ws)}"
                )
            arrays = [a for _, a in have_ws]
        items = []
        for (wname, shape), arr in zip(want_ws, arrays):
            if tuple(arr.shape) != tuple(int(s) for s in shape):
                raise ValueError(
                    f"{where}layer {label}, weight {wname}: shape {tuple(arr.shape)} in the file, "
                    f"{tuple(int(s) for s in shape)} in the model"
                )
            items.append((wname, np.asarray(arr, dtype=np.float32)))
        out[want_layer] = items
    return out


def count_values(weights: Mapping[str, Sequence[Tuple[str, np.ndarray]]]) -> int:
    """Total number of values (2,257,984 for MobileNetV2 1.0 without top)."""
    return int(sum(int(np.asarray(a).size) for ws in weights.values() for _, a in ws))


# --------------------------------------------------------------------------- Keras 3 layout


def is_keras3(path: PathLike) -> bool:
    """An HDF5 file in the Keras 3 ``.weights.h5`` layout (no ``layer_names``, ``layers``/``vars``)."""
    import h5py

    p = _path(path)
    if _sniff(p) != "h5":
        return False
    try:
        with h5py.File(p, "r") as f:
            legacy = "layer_names" in f.attrs or "layer_names0" in f.attrs
            return ("layers" in f or "vars" in f) and not legacy
    except (OSError, RuntimeError, ValueError, KeyError):
        return False


def read_keras3(path: PathLike) -> "OrderedDict[str, Tuple[Optional[str], List[np.ndarray]]]":
    """Every ``.../vars`` group of a Keras 3 weights file: path (without ``/vars``) ->
    (the layer name Keras recorded or None, [variables in order]). A ``vars`` group holds
    datasets named exactly ``0`` .. ``n-1``, as Keras's ``load_own_variables`` reads them."""
    import h5py

    from catdog import _h5safe

    p = _path(path)
    where = str(p)
    out: "OrderedDict[str, Tuple[Optional[str], List[np.ndarray]]]" = OrderedDict()
    try:
        with _open_checked(p) as f:
            def visit(name, obj):
                if not (name == "vars" or name.endswith("/vars")):
                    return
                if not isinstance(obj, h5py.Group):
                    raise ValueError(f"{p}: {name} is a dataset, not a group of variables")
                keys = list(obj.keys())
                if sorted(keys) != sorted(str(i) for i in range(len(keys))):
                    raise ValueError(f"{p}: {name} holds {_first(sorted(keys))}; Keras numbers "
                                     "a layer's variables 0, 1, 2, ... without gaps")
                layer = _h5safe.string_attr(obj, "name", where)
                arrays = []
                for i in range(len(keys)):
                    ds = obj[str(i)]
                    if not isinstance(ds, h5py.Dataset):
                        raise ValueError(f"{p}: {name}/{i} is a group, not a variable")
                    label = f"layer {layer!r} ({name}), variable {i}" if layer else f"{name}/{i}"
                    arrays.append(_h5safe.read_array(ds, label, where))
                out[name[:-len("/vars")] if name != "vars" else ""] = (layer, arrays)
            f.visititems(visit)
    except UnicodeError as e:
        raise _corrupt(p, e) from None
    except ValueError:
        raise
    except (OSError, KeyError, RuntimeError, TypeError, IndexError, AttributeError) as e:
        raise _corrupt(p, e) from None
    return out


def write_keras3(path: PathLike, entries: Sequence[Tuple[str, str, Sequence[Any]]]) -> Path:
    """Write the Keras 3 layout: entries (path, layer name, [arrays]) in model order; ``""``
    is the model itself. Every entry gets its ``vars`` group with the ``name`` attribute, as
    Keras writes it for every layer (weightless ones included)."""
    import h5py

    items = [(p, str(n), [np.asarray(a, dtype=np.float32) for a in arrays]) for p, n, arrays in entries]

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for where, name, arrays in items:
                g = f.create_group(f"{where}/vars" if where else "vars")
                g.attrs["name"] = name
                for i, a in enumerate(arrays):
                    g.create_dataset(str(i), data=a)

    return _atomic_write(path, write)
