"""Pretrained weights: Keras file names, the local cache, and a checked download.

The other families (ResNet50, VGG16, MobileNetV3, EfficientNetB0) and the ImageNet class
index are one file each per variant: :data:`KERAS_FILES` lists them with Keras's URLs and
published md5s and :func:`fetch_named` finds or downloads one (the end of this module). What
follows is MobileNetV2's, which has 60 files and no published hashes.

Where a weights file is looked for, in order (``fetch``):

1. a file registered with :func:`use_file` for that (alpha, size, include_top);
2. the folder ``weights_dir=`` or ``$CATDOG_WEIGHTS_DIR`` (files under their Keras names);
3. the cache, ``$CATDOG_HOME/models`` (default ``~/.catdog/models``);
4. a download from Google's Keras bucket, then the GitHub mirror, into the cache.

With ``any_size=True`` (or ``CATDOG_WEIGHTS_ANY_SIZE=1``), steps 1-3 also accept the file of
the same alpha at another input size (224 first): every MobileNetV2 layer is convolutional,
so e.g. the 224 checkpoint runs at 160x160 unchanged (it is what ``../shared`` holds).

Downloads go through :func:`catdog.download.get_file` (streamed to a temporary file, verified,
moved into place; see that module for why it is not pooch). ``python -m catdog.weights`` prints the catalogue as JSON
(``weights/catalogue.json`` in the source tree is that output).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from catdog.download import DownloadError, cache_folder, catdog_home, get_file, sha256_of  # noqa: F401

__all__ = [
    "ALPHAS",
    "SIZES",
    "BASE_URL",
    "MIRROR_URL",
    "DownloadError",
    "catdog_home",
    "cache_folder",
    "resolve",
    "urls_for",
    "known",
    "catalogue",
    "use_file",
    "clear_files",
    "locate",
    "fetch",
    "weights_path",
    "get_file",
    "sha256_of",
    "KERAS_FILES",
    "locate_named",
    "fetch_named",
]

PathLike = Union[str, "os.PathLike[str]"]

ALPHAS: Tuple[float, ...] = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
SIZES: Tuple[int, ...] = (96, 128, 160, 192, 224)
BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
MIRROR_URL = "https://github.com/JonathanCMitchell/mobilenet_v2_keras/releases/download/v1.1/"
_PREFIX = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"

# What we actually know about the official files (file name -> (size in bytes, sha256)).
# Everything else is unknown (None) and downloads of those files are checked only for
# completeness (Content-Length) and HDF5 signature -- as Keras itself does (no hash).
_KNOWN: Dict[str, Tuple[Optional[int], Optional[str]]] = {
    # the lab's file; size from the TF tutorial's download log
    _PREFIX + "1.0_160_no_top.h5": (9406464, None),
}

# Known local copies that are NOT byte-identical to the official download (converted from
# the TF-slim checkpoint, see weights/README.md). Used to verify those copies, never to
# verify a download.
LOCAL_COPIES: Dict[str, Dict[str, object]] = {
    "shared-1.0_224_no_top": {
        "file": _PREFIX + "1.0_224_no_top.h5",
        "where": "../shared/weights/",
        "size": 9407912,
        "sha256": "22985a6796884dfe549e25598de1ecd523a9b4d69c9dae1a294bf2af34b27e1c",
        "origin": "converted from the TF-slim mobilenet_v2_1.0_224 checkpoint into the Keras "
        "legacy HDF5 layout (see ../shared/weights/PROVENANCE.md); same layer and weight "
        "names and shapes as the official file, not the same bytes",
    },
}

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_overrides: Dict[Tuple[float, int, bool], Path] = {}




# --------------------------------------------------------------------------- names




def _alpha(alpha: float) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number, got {alpha!r}") from None
    for known_alpha in ALPHAS:
        if abs(a - known_alpha) < 1e-9:
            return known_alpha
    raise ValueError(
        "ImageNet weights exist only for alpha in "
        f"{', '.join(str(x) for x in ALPHAS)}; got alpha={alpha!r}"
    )


def _rows(size: Union[int, Sequence[int], None]) -> int:
    """Keras's rule: a square size in SIZES, else the 224 weights with a warning."""
    if size is None:
        return 224
    if isinstance(size, (tuple, list)):
        dims = [d for d in size[:2]]
        if len(dims) != 2 or dims[0] != dims[1] or dims[0] is None:
            warnings.warn(
                f"input size {tuple(size)} is not square: using the weights for 224x224 "
                "(as Keras does)",
                stacklevel=3,
            )
            return 224
        size = dims[0]
    try:
        rows = int(size)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or (rows, cols), got {size!r}") from None
    if rows not in SIZES:
        warnings.warn(
            f"no ImageNet weights for {rows}x{rows} (only {SIZES}): using the 224x224 ones "
            "(as Keras does)",
            stacklevel=3,
        )
        return 224
    return rows


def resolve(alpha: float = 1.0, size: Union[int, Sequence[int], None] = 224, include_top: bool = False) -> str:
    """Keras's file name for MobileNetV2(alpha, input size, include_top) ImageNet weights.

    >>> resolve(1.0, 160, False)
    'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5'
    """
    a = _alpha(alpha)
    rows = _rows(size)
    return f"{_PREFIX}{a}_{rows}{'' if include_top else '_no_top'}.h5"


def urls_for(name: str, base_urls: Optional[Sequence[str]] = None) -> List[str]:
    """Download URLs for a catalogue file name, official bucket first, then the mirror."""
    bases = list(base_urls) if base_urls is not None else [BASE_URL, MIRROR_URL]
    return [b if b.endswith(name) else b.rstrip("/") + "/" + name for b in bases]


def known(name: str) -> Tuple[Optional[int], Optional[str]]:
    """(size, sha256) of an official file, each None when not known."""
    return _KNOWN.get(name, (None, None))


def catalogue() -> Dict[str, object]:
    """Every Keras MobileNetV2 ImageNet weights file, as written to weights/catalogue.json."""
    files = []
    for include_top in (False, True):
        for a in ALPHAS:
            for rows in SIZES:
                name = f"{_PREFIX}{a}_{rows}{'' if include_top else '_no_top'}.h5"
                size, sha = known(name)
                files.append(
                    {
                        "file": name,
                        "alpha": a,
                        "size": rows,
                        "include_top": include_top,
                        "bytes": size,
                        "sha256": sha,
                        "urls": urls_for(name),
                    }
                )
    return {
        "format": "catdog-weights-catalogue",
        "version": 1,
        "model": "MobileNetV2, ImageNet, Keras legacy HDF5 weights layout",
        "base_url": BASE_URL,
        "mirrors": [MIRROR_URL],
        "note": "bytes/sha256 are null where not known; a download is then checked only for "
        "completeness (Content-Length) and the HDF5 signature.",
        "files": files,
        "local_copies": LOCAL_COPIES,
        "other_families": {name: {"url": base + name, "md5": md5}
                           for name, (base, md5) in KERAS_FILES.items()},
    }


# --------------------------------------------------------------------------- finding files


def _key(alpha: float, size: Union[int, Sequence[int], None], include_top: bool) -> Tuple[float, int, bool]:
    return (_alpha(alpha), _rows(size), bool(include_top))


def use_file(path: PathLike, alpha: float = 1.0, size: Union[int, Sequence[int], None] = 224, include_top: bool = False) -> None:
    """Use ``path`` whenever ImageNet weights for (alpha, size, include_top) are asked for.

    E.g. ``use_file("../shared/weights/..._1.0_224_no_top.h5", 1.0, 160)`` makes the lab at
    160x160 run on the 224 checkpoint. Process-wide; undo with :func:`clear_files`.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p}")
    _overrides[_key(alpha, size, include_top)] = p.resolve()


def clear_files() -> None:
    """Forget every :func:`use_file` registration."""
    _overrides.clear()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _candidates(alpha: float, rows: int, include_top: bool, any_size: bool) -> List[str]:
    """File names acceptable for the request, the exact one first, then 224, then the others."""
    names = [resolve(alpha, rows, include_top)]
    if any_size:
        for r in (224,) + tuple(s for s in sorted(SIZES, reverse=True) if s != 224):
            n = resolve(alpha, r, include_top)
            if n not in names:
                names.append(n)
    return names


def locate(
    alpha: float = 1.0,
    size: Union[int, Sequence[int], None] = 224,
    include_top: bool = False,
    *,
    weights_dir: Optional[PathLike] = None,
    cache: Optional[PathLike] = None,
    any_size: Optional[bool] = None,
) -> Optional[Path]:
    """The local weights file for the request (see the module doc for the order), or None."""
    key = _key(alpha, size, include_top)
    if any_size is None:
        any_size = _env_flag("CATDOG_WEIGHTS_ANY_SIZE")
    if key in _overrides:
        return _overrides[key]
    if any_size:
        for k, p in _overrides.items():
            if k[0] == key[0] and k[2] == key[2]:
                return p
    folders: List[Path] = []
    wd = weights_dir if weights_dir is not None else os.environ.get("CATDOG_WEIGHTS_DIR")
    if wd:
        folders.append(Path(wd).expanduser())
    folders.append(Path(cache).expanduser() if cache is not None else cache_folder("models"))
    names = _candidates(key[0], key[1], key[2], bool(any_size))
    for name in names:  # exact size in every folder before another size anywhere
        for folder in folders:
            p = folder / name
            if p.is_file():
                if name != names[0]:
                    warnings.warn(f"using {p} for the {key[1]}x{key[1]} model (any_size)", stacklevel=2)
                return p
    return None


def fetch(
    alpha: float = 1.0,
    size: Union[int, Sequence[int], None] = 224,
    include_top: bool = False,
    *,
    weights_dir: Optional[PathLike] = None,
    cache: Optional[PathLike] = None,
    any_size: Optional[bool] = None,
    base_urls: Optional[Sequence[str]] = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Path of the ImageNet weights file for (alpha, size, include_top): local, else downloaded."""
    found = locate(alpha, size, include_top, weights_dir=weights_dir, cache=cache, any_size=any_size)
    if found is not None:
        return found
    name = resolve(alpha, size, include_top)
    nbytes, sha = known(name)
    hint = (
        "Or point catdog at a copy you already have: pass weights='/path/to/file.h5', "
        "set CATDOG_WEIGHTS_DIR to the folder holding it, or call "
        f"catdog.weights.use_file(path, alpha={_alpha(alpha)}, size={_rows(size)}, include_top={bool(include_top)})."
    )
    return get_file(
        name,
        urls_for(name, base_urls),
        cache if cache is not None else None,
        sha256=sha,
        size=nbytes,
        progress=progress,
        timeout=timeout,
        check=_check_hdf5,
        hint=hint,
    )


def weights_path(
    weights: Optional[PathLike],
    alpha: float = 1.0,
    size: Union[int, Sequence[int], None] = 224,
    include_top: bool = False,
    **kwargs,
) -> Optional[Path]:
    """Interpret a ``weights=`` argument: None, ``"imagenet"`` (-> :func:`fetch`) or a file path."""
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "imagenet":
        return fetch(alpha, size, include_top, **kwargs)
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "weights must be None (random initialization), 'imagenet' (pre-training on "
            f"ImageNet) or the path to a weights file; got {weights!r}"
        )
    p = Path(weights).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"weights file not found: {p} (weights= takes None, 'imagenet' or a file path)"
        )
    if p.is_dir():
        raise ValueError(f"weights= must be a file, but {p} is a folder")
    return p


# --------------------------------------------------------------------------- other families

KERAS_BUCKET = "https://storage.googleapis.com/tensorflow/keras-applications/"

# Every official file the other builders ask for: name -> (base URL, Keras's published hash),
# copied from Keras 3.15's keras/src/applications/{resnet,vgg16,mobilenet_v3,efficientnet,
# imagenet_utils}.py (Keras's hashes are md5s; download.get_file checks them the way Keras's
# get_file does, and a cached copy that no longer matches is fetched again).
_V3 = KERAS_BUCKET + "mobilenet_v3/"
KERAS_FILES: Dict[str, Tuple[str, str]] = {
    "resnet50_weights_tf_dim_ordering_tf_kernels.h5":
        (KERAS_BUCKET + "resnet/", "2cb95161c43110f7111970584f804107"),
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5":
        (KERAS_BUCKET + "resnet/", "4d473c1dd8becc155b73f8504c6f6626"),
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5":
        (KERAS_BUCKET + "vgg16/", "64373286793e3c8b2b4e3219cbf3544b"),
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5":
        (KERAS_BUCKET + "vgg16/", "6d6bbae143d832006294945121d1f1fc"),
    "efficientnetb0.h5":
        ("https://storage.googleapis.com/keras-applications/", "902e53a9f72be733fc0bcb005b3ebbac"),
    "efficientnetb0_notop.h5":
        ("https://storage.googleapis.com/keras-applications/", "50bc09e76180e00e4465e1a485ddc09d"),
    "imagenet_class_index.json":
        ("https://storage.googleapis.com/download.tensorflow.org/data/",
         "c2c37ea517e94d9795004a39431a14cb"),
}
for _model, (_top, _notop) in {
    "large_224_0.75_float": ("765b44a33ad4005b3ac83185abf1d0eb", "40af19a13ebea4e2ee0c676887f69a2e"),
    "large_224_1.0_float": ("59e551e166be033d707958cf9e29a6a7", "07fb09a5933dd0c8eaafa16978110389"),
    "large_minimalistic_224_1.0_float": ("675e7b876c45c57e9e63e6d90a36599c",
                                         "ec5221f64a2f6d1ef965a614bdae7973"),
    "small_224_0.75_float": ("cb65d4e5be93758266aa0a7f2c6708b7", "ebdb5cc8e0b497cd13a7c275d475c819"),
    "small_224_1.0_float": ("8768d4c2e7dee89b9d02b2d03d65d862", "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "small_minimalistic_224_1.0_float": ("99cd97fb2fcdad2bf028eb838de69e37",
                                         "cde8136e733e811080d9fcd8a252f7e4"),
}.items():
    KERAS_FILES[f"weights_mobilenet_v3_{_model}.h5"] = (_V3, _top)
    KERAS_FILES[f"weights_mobilenet_v3_{_model}_no_top_v2.h5"] = (_V3, _notop)


def locate_named(name: str, *, weights_dir: Optional[PathLike] = None) -> Optional[Path]:
    """A copy of the official file ``name`` the user put in ``weights_dir`` /
    ``$CATDOG_WEIGHTS_DIR`` (used as it is: it may be a converted copy), else None. The cache
    is get_file's business (checked against the hash)."""
    wd = weights_dir if weights_dir is not None else os.environ.get("CATDOG_WEIGHTS_DIR")
    if wd:
        p = Path(wd).expanduser() / name
        if p.is_file():
            return p
    return None


def fetch_named(name: str, *, weights_dir: Optional[PathLike] = None,
                cache: Optional[PathLike] = None, base_urls: Optional[Sequence[str]] = None,
                progress: bool = True, timeout: float = 30.0) -> Path:
    """Path of the official Keras file ``name`` (a key of :data:`KERAS_FILES`): the user's copy
    in ``$CATDOG_WEIGHTS_DIR``, else the cache (``$CATDOG_HOME/models``) when it matches
    Keras's hash, else downloaded from Keras's URL (or ``base_urls``), checked against that
    hash (and the HDF5 signature for .h5) and moved into the cache. A file whose hash differs
    is refused (DownloadError saying both hashes); nothing half-written stays behind."""
    if name not in KERAS_FILES:
        raise ValueError(f"no official Keras file named {name!r} in catdog's catalogue")
    found = locate_named(name, weights_dir=weights_dir)
    if found is not None:
        return found
    base, file_hash = KERAS_FILES[name]
    hint = ("Or point catdog at a copy you already have: pass weights='/path/to/file.h5', or "
            "set CATDOG_WEIGHTS_DIR to the folder holding it.")
    return get_file(name, urls_for(name, base_urls if base_urls is not None else [base]),
                    cache, progress=progress, timeout=timeout, file_hash=file_hash,
                    check=_check_hdf5 if name.endswith(".h5") else None, hint=hint)


def _check_hdf5(path: Path) -> Optional[str]:
    with open(path, "rb") as f:
        head = f.read(8)
    return None if head == _HDF5_SIGNATURE else "not an HDF5 file (an error page?)"


def _main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m catdog.weights", description=__doc__.splitlines()[0])
    ap.add_argument("--catalogue", action="store_true", help="print the catalogue as JSON (default)")
    ap.add_argument("--fetch", nargs=3, metavar=("ALPHA", "SIZE", "TOP"), help="fetch one file, TOP is 0/1")
    args = ap.parse_args(argv)
    if args.fetch:
        a, s, t = args.fetch
        print(fetch(float(a), int(s), t.lower() in ("1", "true", "yes")))
        return 0
    print(json.dumps(catalogue(), indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
