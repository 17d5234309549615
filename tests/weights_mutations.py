"""Mutation harness for catdog's weights readers (issue 23): every mutation of a weights file
must end in a clear exception or a correct load, never a crash, a hang or a different model.

Bases: files catdog writes from small models (a tiny Conv/BN/Dense model, MobileNetV2 alpha
0.35 at 32x32) in both layouts (legacy ``.h5``, Keras 3 ``.weights.h5``), and the shared
ImageNet file (legacy, MobileNetV2 alpha 1.0) when ../shared is there. Each mutation copies
a base into a temporary folder, changes it with h5py (or cuts its bytes), and says which
outcomes are acceptable: ``error`` (an exception naming the file, and the model untouched)
and/or ``load`` (the model then holds exactly what the file encodes: the base's weights, or
those of a reference file written with plain float32 values where the mutation changes
values in a well-defined way, e.g. float16 rounding or integer values).

Outcomes: ``error``, ``load`` (acceptable), ``WRONG`` (loaded something else, loaded what
should be refused, or changed the model and then raised), ``UNCLEAR`` (an exception of
another type, or a message not naming the file or what the mutation must name), ``REFUSED``
(a valid file refused), ``CRASH`` (the process died), ``HANG`` (over the time limit).

Cases run in a worker process (``--worker``) that the driver restarts after a crash or a
hang, so both are counted, not fatal. ``python tests/weights_mutations.py`` runs the full
set and prints the counts per class (docs/bad_input.md has them);
tests/test_weights_mutation.py runs the ``ci`` subset.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("CATDOG_SHARED", HERE.parents[1] / "shared"))
SHARED_H5 = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
BAD = ("WRONG", "UNCLEAR", "REFUSED", "CRASH", "HANG", "SETUP")
CASE_TIMEOUT = 60.0


# =========================================================================== bases (worker)


def _tiny():
    import catdog
    from catdog import layers

    inputs = catdog.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(6.0, name="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return catdog.Model(inputs, layers.Dense(2, name="dense")(x), name="tiny")


def _mnv2(alpha):
    import catdog

    return lambda: catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=alpha,
                                                   include_top=False, weights=None)


class Base:
    """A weights file, a model it loads into, and that model's weights after the load."""

    def __init__(self, name, layout, path, model):
        self.name, self.layout, self.path, self.model = name, layout, Path(path), model
        model.load_weights(self.path)
        self.weights = [w.copy() for w in model.get_weights()]
        self.sentinel = [w + 0.5 for w in self.weights]
        self.targets = _targets(self.path, layout)


def make_bases(folder, which):
    import catdog

    catdog.random.set_seed(3)
    out = []
    for name, build in (("tiny", _tiny), ("mnv2", _mnv2(0.35))):
        for layout, suffix in (("legacy", ".h5"), ("keras3", ".weights.h5")):
            key = f"{name}-{layout}"
            if which is not None and key not in which:
                continue
            model = build()
            rng = np.random.default_rng(len(out))
            model.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32)
                               for w in model.get_weights()])
            path = Path(folder) / f"{key}{suffix}"
            model.save_weights(path)
            out.append(Base(key, layout, path, model))
    if (which is None or "shared-legacy" in which) and SHARED_H5.is_file():
        path = Path(folder) / "shared-legacy.h5"
        shutil.copyfile(SHARED_H5, path)
        out.append(Base("shared-legacy", "legacy", path, _mnv2(1.0)()))
    return out


def _targets(path, layout):
    """Weight datasets of a file, in file order: [(dataset path, layer group path, index)]."""
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        if layout == "legacy":
            for layer in [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]:
                names = f[layer].attrs["weight_names"]
                for i, n in enumerate(names):
                    out.append((f"{layer}/{n.decode() if isinstance(n, bytes) else n}", layer, i))
        else:
            def visit(name, obj):
                if name.endswith("vars") and isinstance(obj, h5py.Group):
                    for k in sorted(obj, key=int):
                        out.append((f"{name}/{k}", name, int(k)))
            f.visititems(visit)
    return out


# =========================================================================== mutation helpers


def _replace(f, path, data=None, **kw):
    """Replace dataset ``path`` by a new one (same name) made with create_dataset(**kw)."""
    parent, name = path.rsplit("/", 1) if "/" in path else ("/", path)
    g = f[parent]
    del g[name]
    if data is not None:
        kw["data"] = data
    return g.create_dataset(name, **kw)


def _values(f, path):
    return np.asarray(f[path][()], dtype=np.float32)


def _copy_all(src, dst, libver="latest"):
    """Rewrite ``src`` as a new file (optionally with the newest format, which allows large
    attributes); returns the open destination file for further changes."""
    import h5py

    out = h5py.File(dst, "w", libver=libver)
    with h5py.File(src, "r") as f:
        def copy(name, obj):
            new = (out.create_group(name) if isinstance(obj, h5py.Group)
                   else out.create_dataset(name, data=obj[()]))
            for k, v in obj.attrs.items():
                new.attrs[k] = v
        for k, v in f.attrs.items():
            out.attrs[k] = v
        f.visititems(copy)  # new objects, so each gets the newest header format
    return out


def _layer_names(f):
    return [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]


# Each mutation: (class, name, accept, apply(f, target, ctx) or a file-level function,
# reference-values function or None, words the message must hold).
#   kind "ds": apply(f, dataset path) on an open h5py file (r+)
#   kind "file": apply(src, dst, base) makes dst itself
Mutation = collections.namedtuple("Mutation", "cls name kind accept apply ref say layouts ci")
MUTATIONS = []


def mutation(cls, name, kind="ds", accept=("error",), ref=None, say=(), layouts=("legacy", "keras3"),
             ci=False):
    def wrap(fn):
        MUTATIONS.append(Mutation(cls, name, kind, tuple(accept), fn, ref, tuple(say), layouts, ci))
        return fn
    return wrap


# ---- dtypes: valid number types load what they hold, the rest are refused by name
def _as(dtype, ci=False):
    def apply(f, path):
        _replace(f, path, _values(f, path).astype(dtype))

    def ref(v):
        return v.astype(dtype).astype(np.float32)
    mutation("dtype", f"as {np.dtype(dtype).str}", accept=("load",), ref=ref, ci=ci)(apply)


for _dt, _ci in (("<f2", False), ("<f8", True), (">f4", True), (">f8", False), (">f2", True)):
    _as(_dt, _ci)


def _as_int(dtype, ci=False):
    info = np.iinfo(dtype)

    def ints(v):
        return np.clip(np.round(v * 8), info.min, info.max).astype(dtype)

    def apply(f, path):
        _replace(f, path, ints(_values(f, path)))

    mutation("dtype", f"as {np.dtype(dtype).str} (integer values)", accept=("load",),
             ref=lambda v: ints(v).astype(np.float32), ci=ci)(apply)


for _dt, _ci in (("<i1", False), ("<i2", False), ("<i4", True), ("<i8", False), ("<u1", False),
                 ("<u2", False), ("<u4", False), ("<u8", False), (">i4", False), (">u2", True)):
    _as_int(_dt, _ci)


def _refuse_dtype(name, make, say, ci=False):
    def apply(f, path):
        _replace(f, path, make(_values(f, path)))
    mutation("dtype", name, say=say, ci=ci)(apply)


_refuse_dtype("text S4 (the issue's file)", lambda v: v.astype("S4"), ("S4", "text"), ci=True)
_refuse_dtype("text S32", lambda v: v.astype("S32"), ("S32",))
_refuse_dtype("bool", lambda v: v > 0, ("bool",), ci=True)
_refuse_dtype("complex64", lambda v: v.astype(np.complex64), ("complex",), ci=True)
_refuse_dtype("complex128", lambda v: v.astype(np.complex128), ("complex",))
_refuse_dtype("compound (one float field)",
              lambda v: v.astype([("x", "<f4")]), ("compound",), ci=True)
_refuse_dtype("opaque V4 (raw float bytes)", lambda v: v.view("V4"), ("opaque",))


@mutation("dtype", "HDF5 array type (2,)f4", say=("array type",))
def _array_type(f, path):
    v = _values(f, path)
    _replace(f, path, shape=v.shape, dtype=np.dtype("(2,)<f4"))


_refuse_dtype("longdouble", lambda v: v.astype(np.longdouble), ("16 bytes",))


@mutation("dtype", "variable-length text", say=("text",))
def _vlen_text(f, path):
    import h5py

    v = _values(f, path)
    _replace(f, path, np.array([str(x) for x in v.ravel()], dtype=object).reshape(v.shape),
             dtype=h5py.string_dtype())


@mutation("dtype", "enum", say=("enum",), ci=True)
def _enum(f, path):
    import h5py

    v = _values(f, path)
    dt = h5py.enum_dtype({"NEG": 0, "POS": 1}, basetype="i1")
    _replace(f, path, (v > 0).astype("i1"), dtype=dt)


@mutation("dtype", "object references", say=("references",))
def _refs(f, path):
    import h5py

    v = _values(f, path)
    _replace(f, path, shape=v.shape, dtype=h5py.ref_dtype)


def _bf16_bits(v):
    return (v.view("<u4") >> 16).astype("<u2")


@mutation("dtype", "bfloat16, marked as Keras 3 writes it", accept=("load",),
          ref=lambda v: (_bf16_bits(v).astype(np.uint32) << 16).view(np.float32), ci=True)
def _bf16(f, path):
    ds = _replace(f, path, _bf16_bits(_values(f, path)).view("V2"))
    ds.attrs["dtype"] = "bfloat16"


@mutation("dtype", "opaque 2 bytes without the bfloat16 mark", say=("opaque",))
def _bf16_unmarked(f, path):
    _replace(f, path, _bf16_bits(_values(f, path)).view("V2"))


@mutation("dtype", "float32 marked bfloat16", say=("bfloat16",))
def _bf16_wrong_mark(f, path):
    ds = _replace(f, path, _values(f, path))
    ds.attrs["dtype"] = "bfloat16"


@mutation("dtype", "float64 beyond float32's range", say=("range",), ci=True)
def _overflow(f, path):
    _replace(f, path, _values(f, path).astype(np.float64) * 1e300)


@mutation("dtype", "NaN", say=("NaN",))
def _nan(f, path):
    v = _values(f, path)
    v.flat[0] = np.nan
    _replace(f, path, v)


@mutation("dtype", "Inf in float16", say=("Inf",))
def _inf(f, path):
    v = _values(f, path).astype(np.float16)
    v.flat[-1] = np.inf
    _replace(f, path, v)


# ---- shapes and rank
def _shape(name, reshape, ci=False):
    def apply(f, path):
        _replace(f, path, reshape(_values(f, path)))
    mutation("shape", name, ci=ci)(apply)


_shape("reversed axes", lambda v: np.ascontiguousarray(v.T) if v.ndim > 1 else np.concatenate([v, v]), ci=True)
_shape("extra leading axis", lambda v: v[None])
_shape("flattened", lambda v: v.ravel() if v.ndim > 1 else v[:, None], ci=True)
_shape("scalar", lambda v: np.float32(v.flat[0]))
_shape("empty (0 values)", lambda v: np.zeros((0,) + v.shape[1:], np.float32))
_shape("one value more", lambda v: np.concatenate([v.ravel(), [1.0]]).astype(np.float32)
       .reshape(-1) if v.ndim == 1 else np.concatenate([v, v[..., :1]], -1))
_shape("same count, other shape", lambda v: v.reshape(-1, 2) if v.size % 2 == 0 and v.ndim != 2
       else v.reshape(-1))


@mutation("shape", "null dataspace (h5py.Empty)", say=("null",))
def _null(f, path):
    import h5py

    _replace(f, path, h5py.Empty("<f4"))


@mutation("shape", "shape bomb (declares 4 TiB, stores nothing)", say=("bomb",), ci=True)
def _bomb(f, path):
    _replace(f, path, shape=(1 << 20, 1 << 20), dtype="<f4", chunks=(1024, 1024),
             compression="gzip")


# ---- links and storage outside the file
@mutation("link", "soft link to the same values elsewhere", say=("SoftLink",), ci=True)
def _soft(f, path):
    import h5py

    f.move(path, "/moved_here")
    f[path] = h5py.SoftLink("/moved_here")


@mutation("link", "dangling soft link", say=("SoftLink",))
def _dangling(f, path):
    import h5py

    del f[path]
    f[path] = h5py.SoftLink("/nothing/here")


@mutation("link", "external link to a copy of the values", say=("ExternalLink",), ci=True)
def _external_link(f, path):
    import h5py

    side = Path(f.filename).with_suffix(".side.h5")
    with h5py.File(side, "w") as s:
        s["x"] = f[path][()]
    del f[path]
    f[path] = h5py.ExternalLink(str(side), "/x")


@mutation("link", "external link for a whole layer group", say=("ExternalLink",))
def _external_group(f, path):
    import h5py

    group = path.rsplit("/", 1)[0].split("/")[0]
    side = Path(f.filename).with_suffix(".side.h5")
    with h5py.File(side, "w") as s:
        f.copy(f[group], s, name="g")
    del f[group]
    f[group] = h5py.ExternalLink(str(side), "/g")


@mutation("link", "external raw storage (create_dataset(external=))", say=("external",), ci=True)
def _external_storage(f, path):
    v = _values(f, path)
    raw = Path(f.filename).with_suffix(".raw")
    raw.write_bytes(v.tobytes())
    _replace(f, path, shape=v.shape, dtype="<f4", external=[(str(raw), 0, v.nbytes)])


def _vds(other_file):
    def apply(f, path):
        import h5py

        v = _values(f, path)
        src_file, src_name = ".", "/vds_source"
        if other_file:
            src_file = str(Path(f.filename).with_suffix(".vsrc.h5"))
            with h5py.File(src_file, "w") as s:
                s["x"] = v
            src_name = "/x"
        else:
            f["vds_source"] = v
        layout = h5py.VirtualLayout(shape=v.shape, dtype="<f4")
        layout[...] = h5py.VirtualSource(src_file, src_name, shape=v.shape)
        parent, name = path.rsplit("/", 1)
        del f[path]
        f[parent].create_virtual_dataset(name, layout)
    mutation("link", f"virtual dataset ({'another file' if other_file else 'same file'})",
             say=("virtual",), ci=other_file)(apply)


_vds(True)
_vds(False)


@mutation("link", "hard-link alias (two names, one dataset)", say=("more than one name",), ci=True)
def _alias(f, path):
    f["alias_of_a_weight"] = f[path]


@mutation("link", "hard-link cycle (a group linked into itself)", say=("cycle",))
def _cycle(f, path):
    group = path.rsplit("/", 1)[0]
    f[group]["loop"] = f["/"]


@mutation("link", "weight replaced by a hard link to another same-shaped weight",
          say=("more than one name",))
def _alias_other(f, path):
    import h5py

    shape = f[path].shape
    other = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.shape == shape and "/" + name != "/" + path.lstrip("/"):
            other.append(name)
    f.visititems(visit)
    if not other:  # no twin: alias itself under a second name instead
        f["alias_of_a_weight"] = f[path]
        return
    del f[path]
    f[path] = f[other[0]]


# ---- truncation: cut the file at many offsets
def _cut(frac=None, at=None):
    def apply(src, dst, base):
        data = Path(src).read_bytes()
        n = at if at is not None else int(len(data) * frac)
        n = max(0, min(len(data) - 1, n if n >= 0 else len(data) + n))
        Path(dst).write_bytes(data[:n])
    return apply


CUT_OFFSETS = [0, 1, 7, 8, 48, 96, 200, 512, 800, 1024, 1400, 2048, 4096, -1, -8, -64, -512, -4096]
CUT_FRACTIONS = [i / 40 for i in range(1, 40)]
for _at in CUT_OFFSETS:
    mutation("truncation", f"cut at byte {_at}", kind="file",
             ci=_at in (8, 512, -1))(_cut(at=_at))
for _fr in CUT_FRACTIONS:
    mutation("truncation", f"cut at {_fr:.3f} of the file", kind="file",
             ci=_fr in (0.25, 0.5, 0.75))(_cut(frac=_fr))


@mutation("truncation", "garbage appended", kind="file", accept=("load",), ci=True)
def _append(src, dst, base):
    Path(dst).write_bytes(Path(src).read_bytes() + os.urandom(4096))


# ---- legacy name lists: layer_names / weight_names
def _legacy(name, accept=("error",), say=(), ci=False):
    def wrap(fn):
        return mutation("names", name, accept=accept, say=say, layouts=("legacy",), ci=ci)(fn)
    return wrap


def _layer_of(path):
    return path.split("/", 1)[0]


def _set_names(obj, attr, names, dtype=None):
    obj.attrs[attr] = np.array([n.encode() for n in names], dtype=dtype) if dtype is None else \
        np.array(names, dtype=dtype)


@_legacy("layer_names as integers", say=("layer_names", "integers"), ci=True)
def _ln_int(f, path):
    f.attrs["layer_names"] = np.arange(len(_layer_names(f)))


@_legacy("layer_names as floats", say=("layer_names",))
def _ln_float(f, path):
    f.attrs["layer_names"] = np.linspace(0, 1, len(_layer_names(f)))


@_legacy("layer_names as variable-length str (Keras 3 writes so)", accept=("load",), ci=True)
def _ln_vlen(f, path):
    import h5py

    f.attrs.create("layer_names", _layer_names(f), dtype=h5py.string_dtype())


@_legacy("layer_names two-dimensional", say=("layer_names", "one-dimensional"))
def _ln_2d(f, path):
    names = _layer_names(f)
    if len(names) % 2:
        names.append(names[-1])
    f.attrs["layer_names"] = np.array([n.encode() for n in names]).reshape(2, -1)


@_legacy("layer_names a single string", say=())
def _ln_scalar(f, path):
    f.attrs["layer_names"] = _layer_of(path).encode()


@_legacy("layer_names repeats a layer", say=("twice",), ci=True)
def _ln_repeat(f, path):
    names = _layer_names(f)
    _set_names(f, "layer_names", names + [_layer_of(path)])


@_legacy("layer_names drops a layer with weights", say=(), ci=True)
def _ln_drop(f, path):
    _set_names(f, "layer_names", [n for n in _layer_names(f) if n != _layer_of(path)])


@_legacy("layer_names lists a layer with no group", say=("no group",))
def _ln_dangling(f, path):
    _set_names(f, "layer_names", _layer_names(f) + ["no_such_layer"])


@_legacy("layer_names empty", say=())
def _ln_empty(f, path):
    f.attrs["layer_names"] = np.array([], dtype="S1")


@_legacy("layer_names absent", say=("layer_names",))
def _ln_absent(f, path):
    del f.attrs["layer_names"]


@_legacy("layer_names reordered", accept=("load", "error"))
def _ln_reorder(f, path):
    _set_names(f, "layer_names", _layer_names(f)[::-1])


@_legacy("layer_names split in 3 chunks as Keras does for long lists", accept=("load",))
def _ln_chunks(f, path):
    names = _layer_names(f)
    del f.attrs["layer_names"]
    for i, part in enumerate(np.array_split(np.array([n.encode() for n in names]), 3)):
        f.attrs[f"layer_names{i}"] = part


@_legacy("layer_names in 5000 chunks", say=("chunks",))
def _ln_many_chunks(f, path):
    names = _layer_names(f)
    del f.attrs["layer_names"]
    f.attrs["layer_names0"] = np.array([n.encode() for n in names])
    for i in range(1, 5000):
        f.attrs[f"layer_names{i}"] = np.array([], dtype="S1")


@_legacy("layer_names with invalid UTF-8", say=("UTF-8",))
def _ln_utf8(f, path):
    names = [n.encode() for n in _layer_names(f)]
    names[0] = b"\xff\xfe" + names[0]
    f.attrs["layer_names"] = np.array(names)


@_legacy("layer_names with a path ('a/b')", say=("not a layer name",))
def _ln_slash(f, path):
    names = _layer_names(f)
    names[names.index(_layer_of(path))] = path.rsplit("/", 1)[0]
    _set_names(f, "layer_names", names)


@_legacy("layer group replaced by a dataset", say=("not a group",))
def _group_ds(f, path):
    layer = _layer_of(path)
    del f[layer]
    f[layer] = np.zeros(3, np.float32)


def _wn(f, path):
    layer = _layer_of(path)
    g = f[layer]
    return g, [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]


@_legacy("weight_names as integers", say=("weight_names", "integers"), ci=True)
def _wn_int(f, path):
    g, names = _wn(f, path)
    g.attrs["weight_names"] = np.arange(len(names))


@_legacy("weight_names repeats a weight", say=("twice",), ci=True)
def _wn_repeat(f, path):
    g, names = _wn(f, path)
    _set_names(g, "weight_names", names + [names[0]])


@_legacy("weight_names drops a weight", say=())
def _wn_drop(f, path):
    g, names = _wn(f, path)
    _set_names(g, "weight_names", names[1:])


@_legacy("weight_names absent", say=())
def _wn_absent(f, path):
    g, names = _wn(f, path)
    del g.attrs["weight_names"]


@_legacy("weight_names lists a missing weight", say=("missing",), ci=True)
def _wn_dangling(f, path):
    g, names = _wn(f, path)
    _set_names(g, "weight_names", names[:-1] + [names[-1] + "_gone"])


@_legacy("weight_names reordered", accept=("load", "error"))
def _wn_reorder(f, path):
    g, names = _wn(f, path)
    _set_names(g, "weight_names", names[::-1])


@_legacy("weight_names absolute path to another layer's weight", say=("absolute",), ci=True)
def _wn_absolute(f, path):
    g, names = _wn(f, path)
    names[0] = "/" + path
    _set_names(g, "weight_names", names)


@_legacy("weight_names with a '.' part", say=())
def _wn_dot(f, path):
    g, names = _wn(f, path)
    names[0] = "./" + names[0]
    _set_names(g, "weight_names", names)


@_legacy("weight_names points to a group", say=("not a dataset",))
def _wn_group(f, path):
    g, names = _wn(f, path)
    g.create_group("a_group")
    names[0] = "a_group"
    _set_names(g, "weight_names", names)


@_legacy("keras_version and backend of wrong types", accept=("load",))
def _version_attrs(f, path):
    f.attrs["keras_version"] = np.arange(5)
    f.attrs["backend"] = 3.5


def _huge_names(attr_of, n_names=None, one_long=None, vlen=False):
    def apply(src, dst, base):
        import h5py

        with _copy_all(src, dst) as f:
            obj = attr_of(f, base)
            if n_names is not None:
                obj.attrs["layer_names" if obj.name == "/" else "weight_names"] = \
                    np.full(n_names, b"x" * 8, dtype="S8")
            else:
                attr = "layer_names" if obj.name == "/" else "weight_names"
                if vlen:
                    obj.attrs.create(attr, ["y" * one_long], dtype=h5py.string_dtype())
                else:
                    obj.attrs[attr] = np.array([b"y" * one_long])
    return apply


def _root(f, base):
    return f


def _first_layer(f, base):
    return f[_layer_of(base.targets[0][0])]


mutation("names", "layer_names with 10^7 entries (80 MB)", kind="file", say=("more than",),
         layouts=("legacy",), ci=True)(_huge_names(_root, n_names=10_000_000))
mutation("names", "weight_names with 10^6 entries", kind="file", say=("more than",),
         layouts=("legacy",))(_huge_names(_first_layer, n_names=1_000_000))
mutation("names", "layer_names holding one 16 MB name", kind="file", say=("bytes",),
         layouts=("legacy",), ci=True)(_huge_names(_root, one_long=16 << 20))
mutation("names", "weight_names holding one 16 MB variable-length name", kind="file",
         say=("bytes",), layouts=("legacy",))(_huge_names(_first_layer, one_long=16 << 20, vlen=True))


# ---- Keras 3 layout: numbered variables and the 'name' attribute
def _k3(name, accept=("error",), say=(), ci=False):
    def wrap(fn):
        return mutation("names", name, accept=accept, say=say, layouts=("keras3",), ci=ci)(fn)
    return wrap


def _vars(path):
    return path.rsplit("/", 1)[0]


@_k3("variables renumbered with a gap", say=("without gaps",), ci=True)
def _k3_gap(f, path):
    g = f[_vars(path)]
    last = str(len(g) - 1)
    g.move(last, str(len(g) + 3))


@_k3("an extra variable", say=())
def _k3_extra(f, path):
    g = f[_vars(path)]
    g[str(len(g))] = np.ones(3, np.float32)


@_k3("a variable missing", say=())
def _k3_missing(f, path):
    g = f[_vars(path)]
    del g[str(len(g) - 1)]


@_k3("variable named '00'", say=("without gaps",))
def _k3_zero_pad(f, path):
    g = f[_vars(path)]
    g.move("0", "00")


@_k3("a variable that is a group", say=("group",))
def _k3_group(f, path):
    del f[path]
    f.create_group(path)


@_k3("vars group missing", say=())
def _k3_no_vars(f, path):
    del f[_vars(path)]


@_k3("vars is a dataset", say=("dataset",))
def _k3_vars_ds(f, path):
    v = _vars(path)
    del f[v]
    f[v] = np.zeros(3, np.float32)


@_k3("layer group renamed (its name attribute kept)", accept=("load", "error"), ci=True)
def _k3_renamed(f, path):
    layer = _vars(path).rsplit("/", 1)[0]
    if "/" in layer:
        f.move(layer, layer + "_renamed")


@_k3("name attribute an integer", accept=("load", "error"), say=("name",), ci=True)
def _k3_name_int(f, path):
    f[_vars(path)].attrs["name"] = 7


@mutation("names", "name attribute of 16 MB", kind="file", accept=("load", "error"),
          say=("bytes",), layouts=("keras3",))
def _k3_name_huge_file(src, dst, base):
    with _copy_all(src, dst) as f:
        f[_vars(base.targets[0][0])].attrs["name"] = np.array(b"z" * (16 << 20))


@_k3("a layer's variables swapped", accept=("error",), say=("shape",))
def _k3_swap(f, path):
    g = f[_vars(path)]
    if len(g) >= 2 and g["0"].shape != g["1"].shape:
        g.move("0", "tmp")
        g.move("1", "0")
        g.move("tmp", "1")
    else:
        _replace(f, path, np.zeros((2, 2, 2), np.float32))


# =========================================================================== running (worker)


def _mutate(m, base, target, dst):
    import h5py

    if m.kind == "file":
        m.apply(str(base.path), str(dst), base)
        return
    shutil.copyfile(base.path, dst)
    with h5py.File(dst, "r+") as f:
        m.apply(f, target)


def _reference(m, base, target, dst):
    """A plain float32 file holding what the mutated one encodes (for value-changing mutations)."""
    import h5py

    shutil.copyfile(base.path, dst)
    with h5py.File(dst, "r+") as f:
        _replace(f, target, m.ref(_values(f, target)))


def _same(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


def run_case(m, base, target, folder):
    """Mutate, load, classify: (outcome, detail)."""
    folder = Path(folder)
    for p in folder.iterdir():
        p.unlink()
    dst = folder / f"mut{base.path.suffix if base.layout == 'legacy' else '.weights.h5'}"
    _mutate(m, base, target, dst)
    expected = base.weights
    if m.ref is not None:
        ref = folder / ("ref" + (".h5" if base.layout == "legacy" else ".weights.h5"))
        _reference(m, base, target, ref)
        base.model.load_weights(ref)
        expected = [w.copy() for w in base.model.get_weights()]
    base.model.set_weights(base.sentinel)
    try:
        base.model.load_weights(dst)
    except (ValueError, OSError) as e:
        msg = str(e)
        if not _same(base.model.get_weights(), base.sentinel):
            return "WRONG", f"changed the model, then raised: {msg[:300]}"
        missing = [w for w in (dst.name,) + m.say if w not in msg]
        if missing:
            return "UNCLEAR", f"message lacks {missing}: {type(e).__name__}: {msg[:300]}"
        if "error" not in m.accept:
            return "REFUSED", msg[:300]
        return "error", msg[:300]
    except Exception as e:  # noqa: BLE001 - every other exception is a finding
        return "UNCLEAR", f"{type(e).__name__}: {str(e)[:300]}"
    if not _same(base.model.get_weights(), expected):
        return "WRONG", "loaded weights that differ from what the file encodes"
    if "load" not in m.accept:
        return "WRONG", "loaded a file that must be refused"
    return "load", ""


def cases(bases, subset):
    """[(case id, mutation, base, target)] in a fixed order."""
    out = []
    for base in bases:
        targets = base.targets
        picks = [targets[0], targets[len(targets) // 2], targets[-1]]
        if subset == "ci":
            picks = picks[:1] if base.name.startswith(("mnv2", "shared")) else picks[:2]
        for m in MUTATIONS:
            if base.layout not in m.layouts:
                continue
            if subset == "ci" and not m.ci:
                continue
            if subset == "ci" and base.name.startswith(("mnv2", "shared")) and m.cls == "names" \
                    and m.kind == "file":
                continue  # the huge-attribute cases run once, on the tiny base
            for t in (picks[:1] if m.kind == "file" else picks):
                out.append((f"{base.name} | {m.cls} | {m.name} | {t[0]}", m, base, t[0]))
    return out


def _selftest(args):
    """Three cases that die, hang and pass, so the driver's own counting can be tested."""
    import signal

    steps = [("selftest | crash", lambda: os.kill(os.getpid(), signal.SIGSEGV)),
             ("selftest | hang", lambda: time.sleep(3600)),
             ("selftest | pass", lambda: None)]
    print(json.dumps({"total": len(steps)}), flush=True)
    for i, (cid, step) in enumerate(steps):
        if i >= args.skip:
            print(json.dumps({"start": i, "id": cid}), flush=True)
            step()
            print(json.dumps({"done": i, "id": cid, "cls": "selftest", "outcome": "load",
                              "detail": "", "seconds": 0}), flush=True)
    return 0


def worker(args):
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash is counted, not dumped
    if args.subset == "selftest":
        return _selftest(args)
    folder = Path(tempfile.mkdtemp(prefix="catdog-mut-", dir=args.tmp))
    bases = make_bases(folder, None if args.bases == "all" else set(args.bases.split(",")))
    work = folder / "case"
    work.mkdir()
    todo = cases(bases, args.subset)
    print(json.dumps({"total": len(todo)}), flush=True)
    for i, (cid, m, base, target) in enumerate(todo):
        if i < args.skip:
            continue
        print(json.dumps({"start": i, "id": cid}), flush=True)
        t0 = time.monotonic()
        try:
            outcome, detail = run_case(m, base, target, work)
        except Exception as e:  # noqa: BLE001 - the harness could not make the case
            import traceback

            outcome, detail = "SETUP", traceback.format_exc(limit=-3)[-600:]
        print(json.dumps({"done": i, "id": cid, "cls": m.cls, "outcome": outcome,
                          "detail": detail, "seconds": round(time.monotonic() - t0, 3)}), flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    return 0


# =========================================================================== driver


def _lines(proc):
    """The worker's stdout as (line or None at the end), read unbuffered so a select() on the
    pipe never misses lines already read into a buffer."""
    fd = proc.stdout.fileno()
    buf = b""

    def next_line(timeout):
        nonlocal buf
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        return line.decode()
    return next_line


def run(subset="full", bases="all", tmp=None, timeout=CASE_TIMEOUT, log=None):
    """Run the cases in worker processes; returns the list of result dicts (one per case)."""
    results = []
    skip = 0
    total = None
    while total is None or skip < total:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--subset", subset,
               "--bases", bases, "--skip", str(skip)] + (["--tmp", str(tmp)] if tmp else [])
        errfile = tempfile.TemporaryFile()  # a file, not a pipe: warnings can never block it
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errfile,
                                cwd=str(tmp or tempfile.gettempdir()))

        def stderr_tail(n):
            errfile.seek(0)
            return errfile.read().decode(errors="replace")[-n:]
        next_line = _lines(proc)
        current, wait = None, 300.0  # start-up: the bases are made first
        while True:
            try:
                line = next_line(wait)
            except TimeoutError:
                proc.kill()
                proc.wait()
                if current is None:
                    raise RuntimeError("mutation worker stalled outside a case: "
                                       + stderr_tail(2000)) from None
                results.append({"id": current["id"], "cls": current["id"].split(" | ")[1],
                                "outcome": "HANG", "detail": f"over {timeout:.0f} s"})
                skip = current["start"] + 1
                break
            if line is None:  # the worker ended
                code = proc.wait()
                err = stderr_tail(2000)
                if current is not None:
                    results.append({"id": current["id"], "cls": current["id"].split(" | ")[1],
                                    "outcome": "CRASH", "detail": f"exit code {code}: {err[-500:]}"})
                    skip = current["start"] + 1
                elif code != 0 or total is None:
                    raise RuntimeError(f"mutation worker failed ({code}): {err[-2000:]}")
                else:
                    skip = total
                break
            msg = json.loads(line)
            if "total" in msg:
                total = msg["total"]
            elif "start" in msg:
                current, wait = msg, timeout
            else:
                results.append(msg)
                if log:
                    log(msg)
                current, wait = None, timeout
        proc.stdout.close()
        errfile.close()
    return results


def counts(results, key="cls"):
    """{class (or base, key="base"): Counter(outcome)} plus an 'all' row."""
    table = collections.defaultdict(collections.Counter)
    for r in results:
        table[r["cls"] if key == "cls" else r["id"].split(" | ")[0]][r["outcome"]] += 1
        table["all"][r["outcome"]] += 1
    return table


def format_counts(table, what="class"):
    cols = ["error", "load"] + list(BAD)
    lines = [f"| {what} | cases | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for cls in sorted(table, key=lambda c: (c == "all", c)):
        c = table[cls]
        lines.append(f"| {cls} | {sum(c.values())} | " + " | ".join(str(c[k]) for k in cols) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--subset", default="full", choices=["full", "ci", "selftest"])
    ap.add_argument("--bases", default="all", help="comma-separated base names, or all")
    ap.add_argument("--skip", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default=None, help="folder for temporary files")
    ap.add_argument("--timeout", type=float, default=CASE_TIMEOUT)
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    t0 = time.monotonic()

    def log(r):
        if args.verbose or r["outcome"] in BAD:
            print(f"{r['outcome']:8} {r['id']}  {r['detail'][:200]}", flush=True)
    results = run(args.subset, args.bases, args.tmp, args.timeout, log)
    for r in results:
        if r["outcome"] in ("CRASH", "HANG"):
            log(r)
    print(format_counts(counts(results)))
    print()
    print(format_counts(counts(results, "base"), "base"))
    print(f"{len(results)} cases in {time.monotonic() - t0:.0f} s; bases: "
          + ("all" if args.bases == "all" else args.bases)
          + ("" if SHARED_H5.is_file() else " (../shared absent: no shared-file cases)"))
    return 1 if any(r["outcome"] in BAD for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
