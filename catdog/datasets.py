"""The lab's dataset: Google's ``cats_and_dogs_filtered`` (2,000 training and 1,000 validation JPEGs).

``cats_and_dogs()`` returns the folder holding ``train/`` and ``validation/``, taken from, in
order: the ``path`` argument, ``$CATDOG_DATA``, the cache
(``$CATDOG_HOME/datasets/cats_and_dogs_filtered``), else a download of the official zip
(through :func:`catdog.weights.get_file`: streamed, checked, atomic), which is then extracted
safely (no absolute paths, ``..``, or links; size-bounded) into a temp folder and renamed into
the cache only once complete and checked.

The check after extracting: the four class folders exist and, for the official zip, the
3,000 images have exactly the content of the official dataset (one sha256 over the sorted
``<sha256>  <relative path>`` lines of every JPEG under ``train/`` and ``validation/``).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, Optional, Union

from catdog import weights as _weights

__all__ = ["URL", "ZIP_NAME", "FOLDER", "CONTENT_SHA256", "cats_and_dogs", "content_digest", "extract_zip", "extract_tar", "counts"]

PathLike = Union[str, "os.PathLike[str]"]

URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
ZIP_NAME = "cats_and_dogs_filtered.zip"
FOLDER = "cats_and_dogs_filtered"
# sha256 over the official 3,000 images (see content_digest); from ../shared/data's list.
CONTENT_SHA256 = "7ecc68776f753fca008de8ee9d57ff4ad6d0550ec8c964be4c5090b0b5fb57fd"
COUNTS = {"train/cats": 1000, "train/dogs": 1000, "validation/cats": 500, "validation/dogs": 500}
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_MAX_MEMBERS = 100_000
_MAX_BYTES = 4 << 30  # refuse zips that would unpack to more than 4 GiB


def _is_dataset(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "validation").is_dir()


def _find_in(folder: Path) -> Optional[Path]:
    """``folder`` itself or ``folder/cats_and_dogs_filtered`` when it holds train/ and validation/."""
    for cand in (folder, folder / FOLDER):
        if _is_dataset(cand):
            return cand
    return None


def content_digest(folder: PathLike) -> str:
    """sha256 over sorted ``"<sha256 of file>  <path relative to folder>\\n"`` of every image
    under ``train/`` and ``validation/``; equals :data:`CONTENT_SHA256` for the official data."""
    root = Path(folder)
    lines = []
    for top in ("train", "validation"):
        for p in sorted((root / top).rglob("*")):
            if p.is_file() and p.suffix.lower() in _IMAGE_EXT:
                lines.append((p.relative_to(root).as_posix(), _weights.sha256_of(p)))
    lines.sort()
    return hashlib.sha256("".join(f"{h}  {rel}\n" for rel, h in lines).encode("utf8")).hexdigest()


def _relative_path(raw: str, kind: str, is_dir: bool) -> Optional[PurePosixPath]:
    """An archive member's path inside the target folder, None for a folder; ValueError for
    a name that is unsafe in any archive (NUL, absolute, drive letter, "..")."""
    name = raw.replace("\\", "/")
    if "\x00" in name:
        raise ValueError(f"unsafe {kind} member {raw!r} (NUL in name)")
    pure = PurePosixPath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or any(part == ".." for part in pure.parts):
        raise ValueError(f"unsafe {kind} member {raw!r} (path outside the target folder)")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if not parts or is_dir or name.endswith("/"):
        return None
    return PurePosixPath(*parts)


def _safe_member(info: zipfile.ZipInfo) -> Optional[PurePosixPath]:
    """The member's relative path, None for directories; ValueError for anything unsafe."""
    if stat.S_ISLNK((info.external_attr >> 16) & 0xFFFF):
        raise ValueError(f"unsafe zip member {info.filename!r} (a symbolic link)")
    return _relative_path(info.filename, "zip", info.is_dir())


def _safe_tar_member(info: tarfile.TarInfo) -> Optional[PurePosixPath]:
    """The member's relative path, None for directories; ValueError for anything unsafe. Only
    regular files and folders are extracted: links, devices and fifos are refused (Keras keeps
    links that stay inside the folder; a data set needs none)."""
    rel = _relative_path(info.name, "tar", info.isdir())
    if not (info.isfile() or info.isdir()):
        raise ValueError(f"unsafe tar member {info.name!r} (not a file or a folder)")
    return rel


def _unpack(archive: Path, out: Path, kind: str, infos, safe_path, size_of, name_of,
            open_member, errors) -> Path:
    """The one extraction rule of zip and tar files: every member's path checked (safe_path)
    and the count and total size bounded before anything is written; then each file written
    into the new folder `out`, never outside it, with no mode taken from the archive."""
    if len(infos) > _MAX_MEMBERS:
        raise ValueError(f"{archive}: {len(infos)} members, more than the {_MAX_MEMBERS} allowed")
    members = [(info, safe_path(info)) for info in infos]  # all checked first
    total = sum(size_of(info) for info, rel in members if rel is not None)
    if total > _MAX_BYTES:
        raise ValueError(f"{archive}: would unpack to {total} bytes, more than allowed")
    out.mkdir(parents=True, exist_ok=False)
    root = out.resolve()
    for info, rel in members:
        if rel is None:
            continue
        target = (out / rel).resolve()
        if root not in target.parents:
            raise ValueError(f"unsafe {kind} member {name_of(info)!r} (path outside the target folder)")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open_member(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except errors as e:  # CRC errors, truncation
            raise ValueError(f"{archive}: corrupt member {name_of(info)!r} ({e})") from None
    return out


def extract_zip(zip_path: PathLike, dest: PathLike) -> Path:
    """Extract ``zip_path`` into the (new) folder ``dest`` safely; every member is checked
    before anything is written. Returns ``dest``. Raises ValueError for unsafe or corrupt zips."""
    zp = Path(zip_path)
    try:
        zf = zipfile.ZipFile(zp)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{zp}: not a valid zip file ({e})") from None
    with zf:
        return _unpack(zp, Path(dest), "zip", zf.infolist(), _safe_member,
                       lambda info: info.file_size, lambda info: info.filename, zf.open,
                       (zipfile.BadZipFile, OSError, EOFError))


def extract_tar(tar_path: PathLike, dest: PathLike) -> Path:
    """Extract a tar (plain, gzip, bzip2 or xz) into the (new) folder ``dest`` with the same
    rules as :func:`extract_zip`: every member checked before anything is written, size- and
    count-bounded, file modes not taken from the archive. Returns ``dest``; ValueError for
    unsafe or corrupt archives."""
    tp = Path(tar_path)
    try:
        tf = tarfile.open(tp)
    except (tarfile.TarError, OSError) as e:
        raise ValueError(f"{tp}: not a valid tar file ({e})") from None
    with tf:
        try:
            infos = []
            for info in tf:  # reading the index walks the whole (compressed) stream once
                infos.append(info)
                if len(infos) > _MAX_MEMBERS:
                    raise ValueError(f"{tp}: more than the {_MAX_MEMBERS} members allowed")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ValueError(f"{tp}: corrupt tar file ({e})") from None
        return _unpack(tp, Path(dest), "tar", infos, _safe_tar_member,
                       lambda info: info.size, lambda info: info.name, tf.extractfile,
                       (tarfile.TarError, OSError, EOFError))


def _check(folder: Path, digest: Optional[str], source: Path) -> None:
    for sub in ("train", "validation"):
        if not (folder / sub).is_dir():
            raise ValueError(f"{source}: no {sub}/ folder in the extracted data")
        classes = [p for p in (folder / sub).iterdir() if p.is_dir()]
        if len(classes) < 2:
            raise ValueError(f"{source}: {sub}/ should hold one folder per class (cats/, dogs/)")
    if digest is not None:
        got = content_digest(folder)
        if got != digest:
            raise ValueError(
                f"{source}: the images differ from the official cats_and_dogs_filtered "
                f"(content sha256 {got}, expected {digest})"
            )


def cats_and_dogs(
    path: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    *,
    url: str = URL,
    urls: Optional[list] = None,
    sha256: Optional[str] = None,
    content_sha256: Optional[str] = CONTENT_SHA256,
    keep_zip: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Folder holding ``train/`` and ``validation/`` of cats_and_dogs_filtered (see module doc).

    ``path`` (or ``$CATDOG_DATA``) may be the ``cats_and_dogs_filtered`` folder, its parent,
    or the downloaded zip (extracted into the cache). ``cache_dir`` defaults to
    ``$CATDOG_HOME/datasets``. ``sha256`` checks the zip itself (not published: None);
    ``content_sha256`` checks the extracted images (None to skip, e.g. for other data).
    """
    given = path if path is not None else os.environ.get("CATDOG_DATA") or None
    cache = Path(cache_dir).expanduser() if cache_dir is not None else _weights.cache_folder("datasets")
    if given is not None:
        p = Path(given).expanduser()
        if not p.exists():
            src = "path" if path is not None else "CATDOG_DATA"
            raise FileNotFoundError(f"{src} points at {p}, which does not exist")
        if p.is_file():
            return _install_zip(p, cache, content_sha256, remove_zip=False)
        found = _find_in(p)
        if found is None:
            raise ValueError(
                f"{p} holds neither train/ and validation/ nor a {FOLDER}/ folder with them"
            )
        return found

    target = cache / FOLDER
    if _is_dataset(target):
        return target

    url_list = list(urls) if urls is not None else [url]
    hint = (
        f"Or unzip it anywhere and pass cats_and_dogs(path=...) or set CATDOG_DATA to the "
        f"{FOLDER} folder (or its parent)."
    )
    zip_path = _weights.get_file(
        ZIP_NAME, url_list, cache, sha256=sha256, progress=progress, timeout=timeout,
        check=_zip_check, hint=hint,
    )
    return _install_zip(zip_path, cache, content_sha256, remove_zip=not keep_zip)


def _zip_check(path: Path) -> Optional[str]:
    return None if zipfile.is_zipfile(path) else "not a zip file (an error page?)"


def _install_zip(zip_path: Path, cache: Path, content_sha256: Optional[str], remove_zip: bool) -> Path:
    """Extract to a temp folder in ``cache``, check, rename to ``cache/cats_and_dogs_filtered``."""
    target = cache / FOLDER
    if _is_dataset(target):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache))
    try:
        out = extract_zip(zip_path, work / "x")
        root = _find_in(out)
        if root is None:
            raise ValueError(f"{zip_path}: no train/ and validation/ folders in the zip")
        _check(root, content_sha256, zip_path)
        try:
            os.rename(root, target)
        except OSError:
            if not _is_dataset(target):  # not a concurrent install that got there first
                raise
    except BaseException:
        if remove_zip:  # a downloaded zip that fails its checks is not kept in the cache
            zip_path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if remove_zip:
        zip_path.unlink(missing_ok=True)
    return target


def counts(folder: PathLike) -> Dict[str, int]:
    """Images per ``split/class`` folder, e.g. ``{"train/cats": 1000, ...}``."""
    root = Path(folder)
    out = {}
    for top in ("train", "validation"):
        for cls in sorted(p for p in (root / top).iterdir() if p.is_dir()):
            out[f"{top}/{cls.name}"] = sum(1 for f in cls.iterdir() if f.suffix.lower() in _IMAGE_EXT)
    return out
