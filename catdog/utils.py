"""catdog.utils: Keras's utils the tutorial uses: ``image_dataset_from_directory``,
``get_file`` (the dataset download), ``plot_model`` (a picture of the layer chain),
``set_random_seed``, and the single-image helpers ``load_img``, ``img_to_array``,
``array_to_img`` (catdog/image_utils.py)."""
from __future__ import annotations

import os
from pathlib import Path

from catdog.data.directory import image_dataset_from_directory  # noqa: F401
from catdog.image_utils import array_to_img, img_to_array, load_img  # noqa: F401

__all__ = ["image_dataset_from_directory", "get_file", "plot_model", "set_random_seed",
           "load_img", "img_to_array", "array_to_img"]

_CATS_AND_DOGS_ZIP = "cats_and_dogs_filtered.zip"


def set_random_seed(seed):
    """Keras's set_random_seed: seeds Python's `random`, NumPy's global generator (which
    image_dataset_from_directory draws its shuffle seed from when given none, as Keras) and
    catdog's own streams (weight initialisation, dropout, augmentation; catdog.random)."""
    import random

    import numpy as np

    from catdog import random as catdog_random

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"set_random_seed expects an integer seed, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % (1 << 32))
    catdog_random.set_seed(int(seed))


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
             cache_subdir="datasets", hash_algorithm="auto", extract=False,
             archive_format="auto", cache_dir=None, force_download=False):
    """Keras 3's get_file (keras/src/utils/file_utils.py): download `origin` once into
    ``<cache_dir or $CATDOG_HOME>/<cache_subdir>`` and return the file's path; with `extract`
    (or `untar`) unpack the tar (.tar, .tar.gz, .tgz, .tar.bz2) or zip archive and return the
    folder it was unpacked into, named as Keras 3 names it: ``fname="flower_photos.tgz"``
    downloads ``flower_photos.tgz`` and unpacks into ``flower_photos_extracted/``; a `fname`
    without a dot (or none) downloads ``<fname>_archive`` and unpacks into ``<fname>/``.

    Differences from Keras: the archive is unpacked into a temporary folder that replaces the
    old one only when complete, and unsafe members (absolute paths, ``..``, links, devices)
    refuse the whole archive instead of being skipped; only sha256 hashes are checked.

    The transfer-learning tutorial's dataset (an origin ending in cats_and_dogs_filtered.zip,
    with `extract`) goes through catdog.datasets.cats_and_dogs(), so ``$CATDOG_DATA`` or a copy
    beside the project serve it without a download; the path returned is then
    ``<folder's parent>/<fname>``, so that tutorial's ``os.path.join(os.path.dirname(path),
    'cats_and_dogs_filtered')`` (and the 2019 ``os.path.splitext(path)[0]``) name the extracted
    folder, as they did with Keras 2."""
    import shutil
    import tempfile
    import urllib.parse

    from catdog import download

    if origin is None:
        raise ValueError("get_file needs origin=, the URL to download")
    if md5_hash is not None or (file_hash is not None and len(str(file_hash)) != 64):
        raise ValueError("get_file checks sha256 hashes only (64 hex digits)")
    if extract and origin.rstrip("/").endswith(_CATS_AND_DOGS_ZIP):
        from catdog import datasets

        fname = fname or os.path.basename(origin.split("?")[0])
        folder = datasets.cats_and_dogs(cache_dir=cache_dir)
        return str(folder.parent / fname)
    provided = bool(fname)
    fname = os.fspath(fname) if fname else os.path.basename(urllib.parse.urlsplit(origin).path)
    if not fname or fname in (os.curdir, os.pardir):
        raise ValueError(f"Can't parse the file name from the origin provided: '{origin}'. "
                         "Please specify the `fname` argument.")
    if os.sep in fname or (os.altsep and os.altsep in fname):
        raise ValueError("Paths are no longer accepted as the `fname` argument. To specify the "
                         f"file's parent directory, use the `cache_dir` argument. Received: fname={fname}")
    base = Path(cache_dir).expanduser() if cache_dir is not None else download.catdog_home()
    datadir = base / cache_subdir
    datadir.mkdir(parents=True, exist_ok=True)
    unpack = extract or untar
    target, extraction_dir = fname, None
    if unpack:
        if provided and "." in fname:  # Keras 3: "flower_photos.tgz" -> flower_photos_extracted/
            extraction_dir = datadir / f"{fname[:fname.find('.')]}_extracted"
        else:
            extraction_dir, target = datadir / fname, f"{fname}_archive"
    if force_download:
        (datadir / target).unlink(missing_ok=True)
    path = download.get_file(target, [origin], datadir, sha256=file_hash)
    if not unpack:
        return str(path)
    formats = ["tar"] if untar else (["tar", "zip"] if archive_format == "auto" else archive_format)
    formats = [formats] if isinstance(formats, str) else list(formats or [])
    work = Path(tempfile.mkdtemp(prefix=".extract-", dir=datadir))
    try:
        from catdog import datasets

        for kind in formats:
            if kind not in ("tar", "zip"):
                raise NotImplementedError(kind)
            if kind == "tar" and _is_tar(path):
                datasets.extract_tar(path, work / "x")
                break
            if kind == "zip" and _is_zip(path):
                datasets.extract_zip(path, work / "x")
                break
        else:
            import warnings

            warnings.warn("Could not extract archive.", stacklevel=2)
            return str(extraction_dir)
        if extraction_dir.exists():
            shutil.rmtree(extraction_dir)
        os.rename(work / "x", extraction_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return str(extraction_dir)


def _is_tar(path) -> bool:
    import tarfile

    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _is_zip(path) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=True, rankdir="TB", dpi=96, **kwargs):
    """Keras's plot_model without pydot/graphviz: the model's layers top to bottom, one box
    each (name, type and, with show_shapes, the output shape), drawn with matplotlib and
    saved to `to_file`. Returns an IPython Image of it in a notebook, else the file's path."""
    import matplotlib.pyplot as plt

    rows = []
    for layer in model.layers:
        text = f"{layer.name} ({type(layer).__name__})" if show_layer_names else type(layer).__name__
        if show_shapes and layer.output_shape is not None:
            text += f"\n(None, {', '.join(map(str, layer.output_shape))})"
        if show_dtype:
            text += "\nfloat32"
        rows.append(text)
    n = len(rows)
    fig = plt.figure(figsize=(4.5, 0.9 * n + 0.4), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, n)
    ax.axis("off")
    for i, text in enumerate(rows):
        y = n - i - 0.5
        ax.text(0.5, y, text, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", facecolor="#e8eef7", edgecolor="#3a5a8c"))
        if i:
            ax.annotate("", xy=(0.5, y + 0.25), xytext=(0.5, y + 0.75),
                        arrowprops=dict(arrowstyle="->", color="#3a5a8c"))
    fig.savefig(to_file, dpi=dpi)
    plt.close(fig)
    try:
        from IPython import get_ipython
        from IPython.display import Image

        if get_ipython() is not None:
            return Image(filename=str(to_file))
    except ImportError:
        pass
    return str(to_file)
