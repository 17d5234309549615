"""HDF5 weights files from users, read safely: the whole file is checked before any weight
value is read, and every weight is converted to float32 only from a type that means numbers.

What a file must be (each rule refuses with a ValueError naming the file and the object):

* **Hard links only, each object under one name.** Soft and external links, external
  storage (``create_dataset(external=...)``) and virtual datasets let a file read other
  files on the user's disk (or make two weights one); Keras never writes them, and Keras 3
  refuses links and external/virtual datasets too (keras/src/saving/saving_lib.py
  ``safe_get_h5_group`` / ``safe_get_h5_dataset``). An object with two hard links (an
  alias, or a group linked into itself) is refused as well: it would give two weights one
  storage, or make the tree a cycle.
* **Bounded size.** At most :data:`MAX_OBJECTS` objects, :data:`MAX_DEPTH` groups deep; the
  values the datasets declare (as float32) at most :data:`BOMB_FLOOR` + :data:`BOMB_RATIO`
  times the file's size, so a chunked dataset that declares terabytes and stores nothing
  (a shape or decompression bomb) is refused before memory is asked for. Name lists hold
  at most :data:`MAX_NAMES` names of at most :data:`MAX_NAME_BYTES` bytes each (Keras splits
  a list into 64 KiB chunks, so no Keras name is longer), in at most :data:`MAX_CHUNKS`
  chunks: a ``layer_names`` of ten million entries is refused before it is read.
* **Weights are real numbers.** IEEE half, single or double floats in either byte order,
  Keras 3's bfloat16 (2-byte opaque data with the attribute ``dtype="bfloat16"``,
  saving_lib.py ``H5Entry``), or integers: Keras loads an array with ``Variable.assign``,
  which converts it with the backend's ``convert_to_tensor(value, dtype=float32)``; with
  TensorFlow that accepts floats and integers (pywrap_tensor.cc ``IsCompatible``) and refuses
  strings, bool, complex and records. Text (``astype("S4")``: Keras 2's ``np.asarray(value,
  float32)`` parsed it silently), bool, enum, compound, complex, opaque, array, reference
  and other float sizes are refused, naming the layer, the weight and the dtype. Values
  must be finite after the conversion (a float64 beyond float32's range is refused too).
  catdog's own ``.npz`` weights go through the same rule (:func:`to_float32`).
"""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

MAX_OBJECTS = 200_000
MAX_DEPTH = 64
MAX_NAMES = 100_000
MAX_NAME_BYTES = 65_536
MAX_CHUNKS = 4_096
BOMB_FLOOR = 64 << 20
BOMB_RATIO = 64

_FLOAT_SIZES = (2, 4, 8)
_INT_SIZES = (1, 2, 4, 8)


def _h5():
    import h5py

    return h5py


def _kind(tclass: int) -> str:
    t = _h5().h5t
    words = {
        t.STRING: "text",
        t.ENUM: "an enum (HDF5 stores bool so)",
        t.COMPOUND: "a compound type (records, or complex numbers)",
        t.OPAQUE: "opaque bytes",
        t.ARRAY: "an array type",
        t.VLEN: "variable-length sequences",
        t.REFERENCE: "object references",
        t.BITFIELD: "a bit field",
        t.TIME: "a time type",
        t.FLOAT: "floats",
        t.INTEGER: "integers",
    }
    if hasattr(t, "COMPLEX"):
        words[t.COMPLEX] = "complex numbers"
    return words.get(tclass, f"HDF5 type class {tclass}")


def _dtype_name(obj) -> str:
    try:
        return str(obj.dtype)
    except Exception:  # a type h5py has no NumPy dtype for
        return "no NumPy equivalent"


# --------------------------------------------------------------------------- the whole file


def check_file(f, where: str) -> None:
    """Refuse links, aliases, external or virtual storage and oversized files (module doc),
    walking every link of ``f`` before anything else reads it."""
    h5py = _h5()
    size = os.path.getsize(f.filename)
    budget = BOMB_FLOOR + BOMB_RATIO * size
    declared = 0
    count = 0
    if h5py.h5o.get_info(f.id).rc != 1:
        raise ValueError(f"{where}: the root group has more than one name (a hard link back "
                         "to it makes a cycle); Keras never writes that")
    stack = [(f, "", 0)]
    while stack:
        group, path, depth = stack.pop()
        for name in group:
            count += 1
            full = f"{path}/{name}"
            if count > MAX_OBJECTS:
                raise ValueError(f"{where}: more than {MAX_OBJECTS:,} objects in the file; "
                                 "not a weights file catdog reads")
            link = group.get(name, getclass=True, getlink=True)
            if link is h5py.SoftLink or link is h5py.ExternalLink:
                target = group.get(name, getlink=True)
                what = (f"file {target.filename!r}, {target.path!r}" if link is h5py.ExternalLink
                        else repr(target.path))
                raise ValueError(
                    f"{where}: {full} is an HDF5 {link.__name__} (to {what}); weights files must "
                    "hold their data themselves (links could read other files), so catdog "
                    "refuses it")
            if link is not h5py.HardLink:
                raise ValueError(f"{where}: {full} is a link of an unknown kind; catdog refuses it")
            obj = group[name]
            if h5py.h5o.get_info(obj.id).rc != 1:
                raise ValueError(
                    f"{where}: {full} is an object with more than one name (an HDF5 hard link "
                    "alias); Keras never writes that, and it would give two weights one value")
            if isinstance(obj, h5py.Group):
                if depth + 1 > MAX_DEPTH:
                    raise ValueError(f"{where}: {full}: groups nested more than {MAX_DEPTH} deep")
                stack.append((obj, full, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    raise ValueError(
                        f"{where}: {full} is a virtual dataset (its values live in other "
                        "datasets or files); catdog refuses it")
                if obj.external:
                    raise ValueError(
                        f"{where}: {full} keeps its values in an external file "
                        f"({obj.external[0][0]!r}); catdog refuses it")
                shape = obj.shape
                if shape is not None:
                    n = int(np.prod(shape, dtype=np.float64))
                    declared += n * max(obj.id.get_type().get_size(), 4)
                    if declared > budget:
                        raise ValueError(
                            f"{where}: {full} declares shape {shape}: the datasets hold more "
                            f"than {budget / 2**20:,.0f} MiB of values in a {size / 2**20:,.1f} MiB "
                            "file (a shape or decompression bomb?); catdog refuses it")


# --------------------------------------------------------------------------- names


def child(group, path: str, where: str):
    """``group[path]`` for a path inside ``group`` (relative, no empty or '.' parts), or None
    when something on the way is missing or not a group."""
    h5py = _h5()
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".") for p in parts):
        raise ValueError(f"{where}: {path!r} is not a name inside {group.name} (absolute or "
                         "empty parts); catdog refuses it")
    obj = group
    for part in parts:
        if not isinstance(obj, h5py.Group) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _decode_name(v, label: str, where: str) -> str:
    if isinstance(v, (bytes, np.bytes_)):
        raw = bytes(v)
        try:
            s = raw.decode("utf8")
        except UnicodeDecodeError:
            raise ValueError(f"{where}: {label} holds a name that is not UTF-8 text "
                             f"({raw[:40]!r})") from None
    elif isinstance(v, str):
        s, raw = str(v), v.encode("utf8", "surrogatepass")
    else:
        raise ValueError(f"{where}: {label} holds {type(v).__name__} values, not names")
    if len(raw) > MAX_NAME_BYTES:
        raise ValueError(f"{where}: {label} holds a name of {len(raw):,} bytes "
                         f"(at most {MAX_NAME_BYTES:,})")
    return s


def _read_names(obj, aname: str, where: str, have: int) -> List[str]:
    h5py = _h5()
    label = f"attribute {aname!r} of {obj.name}"
    aid = obj.attrs.get_id(aname)
    space = aid.get_space()
    if space.get_simple_extent_type() == h5py.h5s.NULL:
        raise ValueError(f"{where}: {label} is empty (a null dataspace), not a list of names")
    shape = space.shape
    if len(shape) == 1 and shape[0] == 0:  # Keras 3 writes an empty list as np.array([]): float64
        return []
    try:
        dt = aid.dtype
    except Exception:
        dt = None
    if dt is None or h5py.check_string_dtype(dt) is None:
        raise ValueError(f"{where}: {label} holds {_kind(aid.get_type().get_class())} "
                         f"(dtype {dt}), not names (strings)")
    if len(shape) > 1:
        raise ValueError(f"{where}: {label} has shape {shape}; a list of names is one-dimensional")
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if have + n > MAX_NAMES:
        raise ValueError(f"{where}: {label} lists more than {MAX_NAMES:,} names; "
                         "not a weights file catdog reads")
    if dt.itemsize > MAX_NAME_BYTES:  # fixed-length strings: known before reading
        raise ValueError(f"{where}: {label} holds names of {dt.itemsize:,} bytes "
                         f"(at most {MAX_NAME_BYTES:,})")
    values = obj.attrs[aname]
    return [_decode_name(v, label, where) for v in np.atleast_1d(values).ravel()]


def name_list(obj, name: str, where: str) -> Optional[List[str]]:
    """Keras's ``load_attributes_from_hdf5_group``: the strings of attribute ``name``, or of
    its chunks ``name0``, ``name1``, ...; None when there is neither. Bounded (module doc)."""
    attrs = obj.attrs
    if name in attrs:
        return _read_names(obj, name, where, 0)
    if f"{name}0" not in attrs:
        return None
    out: List[str] = []
    i = 0
    while f"{name}{i}" in attrs:
        if i >= MAX_CHUNKS:
            raise ValueError(f"{where}: attribute {name!r} of {obj.name} comes in more than "
                             f"{MAX_CHUNKS:,} chunks; not a weights file catdog reads")
        out.extend(_read_names(obj, f"{name}{i}", where, len(out)))
        i += 1
    return out


def string_attr(obj, name: str, where: str) -> Optional[str]:
    """A one-string attribute (Keras 3's ``name``, the ``dtype`` mark), or None if absent."""
    if name not in obj.attrs:
        return None
    names = _read_names(obj, name, where, MAX_NAMES - 1)
    if len(names) != 1:
        raise ValueError(f"{where}: attribute {name!r} of {obj.name} holds {len(names)} "
                         "strings, not one")
    return names[0]


# --------------------------------------------------------------------------- values


def read_array(ds, label: str, where: str) -> np.ndarray:
    """A weight dataset as float32, from the types the module doc lists; ``label`` names the
    layer and weight in messages."""
    h5py = _h5()
    tid = ds.id.get_type()
    tclass, size = tid.get_class(), tid.get_size()
    mark = string_attr(ds, "dtype", where) if "dtype" in ds.attrs else None
    if ds.shape is None:
        raise ValueError(f"{where}: {label} has no values (a null dataspace)")
    bf16 = mark == "bfloat16"
    if bf16 and not (tclass == h5py.h5t.OPAQUE and size == 2):
        raise ValueError(f"{where}: {label} is marked bfloat16 but stored as "
                         f"{_kind(tclass)} of {size} bytes (dtype {_dtype_name(ds)})")
    ok = (bf16 or (tclass == h5py.h5t.FLOAT and size in _FLOAT_SIZES)
          or (tclass == h5py.h5t.INTEGER and size in _INT_SIZES))
    if not ok:
        what = f"{_kind(tclass)} of {size} bytes" if tclass in (h5py.h5t.FLOAT, h5py.h5t.INTEGER) \
            else _kind(tclass)
        raise ValueError(
            f"{where}: {label} is stored as {what} (dtype {_dtype_name(ds)}), not as numbers "
            "catdog loads: float16/32/64, bfloat16 or integers (what Keras's Variable.assign "
            "converts to float32)")
    raw = np.asarray(ds[()])
    if bf16:  # the 16 high bits of a float32, little-endian as Keras writes them
        return _finite((raw.view("<u2").astype(np.uint32) << 16).view(np.float32), raw, label, where)
    return to_float32(raw, label, where)


def to_float32(raw: np.ndarray, label: str, where: str) -> np.ndarray:
    """A NumPy array (catdog's .npz, or a dataset read above) as float32, by the same rule:
    real floats of 2, 4 or 8 bytes or integers, finite after the conversion."""
    if not (raw.dtype.kind == "f" and raw.dtype.itemsize in _FLOAT_SIZES or raw.dtype.kind in "iu"):
        raise ValueError(
            f"{where}: {label} is stored as dtype {raw.dtype}, not as numbers catdog loads: "
            "float16/32/64, bfloat16 or integers (what Keras's Variable.assign converts to float32)")
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite(raw.astype(np.float32), raw, label, where)


def _finite(out: np.ndarray, raw: np.ndarray, label: str, where: str) -> np.ndarray:
    if not np.all(np.isfinite(out)):
        if raw.dtype.kind != "f" or not np.all(np.isfinite(raw)):
            raise ValueError(f"{where}: {label} has NaN or Inf values")
        raise ValueError(f"{where}: {label} has values beyond float32's range "
                         f"(largest magnitude {np.max(np.abs(raw)):.3g})")
    return out  # astype/view made a C-ordered copy; a scalar stays 0-d, so shapes are checked
