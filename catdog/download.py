"""Checked downloads into a cache: ``get_file(name, urls, ...)`` (weights and the dataset use it).

The guarantees, each tested against a local HTTP server on loopback (tests/test_weights_download.py,
tests/test_datasets.py): a download streams into a temporary file beside the target and is moved
into place with ``os.replace`` only once complete and verified (Content-Length, the expected
size, sha256, a caller's check), so the cache never holds a half-written file; a cached file
that no longer matches is fetched again; each URL is tried in turn (the Keras bucket, then the
mirror); when all fail the error names the file, every URL with its reason, and the folder to
put the file in by hand (what an offline machine or a firewalled Colab needs).

Why not pooch (the well-kept library for this job): it would bring requests (with urllib3,
idna, charset-normalizer, certifi), platformdirs and packaging as run-time dependencies of a
package that otherwise needs only NumPy, h5py and matplotlib, and its progress bar needs tqdm;
it has no list of fallback URLs, so the mirror loop and the offline message would stay here
anyway. What remains is ~150 lines of standard-library urllib, as Keras's own ``get_file`` is,
drawn with catdog's one progress module (catdog/_progress.py).
"""
from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Iterable, List, Optional, Tuple, Union

from catdog._progress import ProgressBar, format_bytes

__all__ = ["DownloadError", "get_file", "sha256_of", "hash_of", "cache_folder", "catdog_home"]

PathLike = Union[str, "os.PathLike[str]"]
_CHUNK = 1 << 16


class DownloadError(OSError):
    """Nothing cached and no URL gave a complete, verified file. The message says what to do."""

def catdog_home() -> Path:
    """``$CATDOG_HOME`` or ``~/.catdog``."""
    env = os.environ.get("CATDOG_HOME")
    return Path(env).expanduser() if env else Path.home() / ".catdog"


def cache_folder(subdir: str = "models") -> Path:
    """The cache folder for ``subdir`` (``models`` or ``datasets``); not created here."""
    return catdog_home() / subdir

def sha256_of(path: PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _plain_mode(path: PathLike) -> None:
    """Give a mkstemp file (mode 0600) the permissions of a normally created file (umask)."""
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:
        pass



def hash_of(path: PathLike, file_hash: str) -> Tuple[str, str]:
    """(algorithm, hex digest of ``path``) for an expected ``file_hash``, by Keras's "auto"
    rule (keras/src/utils/file_utils.py resolve_hasher): 64 hex digits are a sha256, anything
    else an md5 (what Keras's applications publish)."""
    algorithm = "sha256" if len(file_hash) == 64 else "md5"
    h = hashlib.new(algorithm, usedforsecurity=False)  # a checksum, not security
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return algorithm, h.hexdigest()


def _verify(path: Path, size: Optional[int], sha256: Optional[str], check=None,
            file_hash: Optional[str] = None) -> Optional[str]:
    """None when ``path`` matches; else what is wrong."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size {actual} bytes, expected {size}"
    if sha256 is not None:
        digest = sha256_of(path)
        if digest.lower() != sha256.lower():
            return f"sha256 {digest}, expected {sha256.lower()}"
    if file_hash is not None:
        algorithm, digest = hash_of(path, file_hash)
        if digest != file_hash.lower():
            return f"{algorithm} {digest}, expected {file_hash.lower()} (Keras's published hash)"
    if check is not None:
        return check(path)
    return None


def _open(url: str, timeout: float):
    """urlopen with catdog's User-Agent (a seam the tests use to keep traffic on loopback)."""
    req = urllib.request.Request(url, headers={"User-Agent": "catdog (python urllib)"})
    return urllib.request.urlopen(req, timeout=timeout)


def _download(url: str, dest_dir: Path, name: str, size: Optional[int], timeout: float, progress: bool) -> Path:
    """Stream ``url`` into a temp file in ``dest_dir``; return it (caller verifies/moves)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _open(url, timeout) as resp:
            length_header = resp.headers.get("Content-Length")
            try:
                length = int(length_header) if length_header is not None else None
            except ValueError:
                length = None
            total = length if length is not None else size
            limit = size if size is not None else length  # never read beyond what we expect
            received = 0
            bar = ProgressBar(total, name, enabled=progress)
            ok = False
            try:
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    received += len(chunk)
                    if limit is not None and received > limit:
                        raise OSError(f"server sent more than the expected {limit} bytes")
                    out.write(chunk)
                    bar.update(len(chunk))
                ok = True
            finally:
                bar.close("" if ok else "failed")
            if length is not None and received != length:
                raise OSError(
                    f"transfer interrupted: got {received} of {length} bytes"
                )
            out.flush()
            os.fsync(out.fileno())
        _plain_mode(tmp)
        return tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def get_file(
    name: str,
    urls: Union[str, Iterable[str]],
    cache_dir: Optional[PathLike] = None,
    sha256: Optional[str] = None,
    size: Optional[int] = None,
    progress: bool = True,
    *,
    subdir: str = "models",
    timeout: float = 30.0,
    check=None,
    hint: str = "",
    file_hash: Optional[str] = None,
) -> Path:
    """Return ``cache_dir/name``, downloading it from the first URL that works if needed.

    ``cache_dir`` defaults to ``$CATDOG_HOME/<subdir>``. A cached file is used when it matches
    ``size``/``sha256``/``file_hash`` (those that are given; ``file_hash`` is Keras's: an md5,
    or a sha256 when 64 digits long); a mismatching one is downloaded again. A
    download is verified (Content-Length, ``size``, ``sha256``, then ``check(path)`` which
    returns None or a complaint) before it is moved into place; any failure leaves nothing
    behind and the next URL is tried. Raises :class:`DownloadError` when all fail.
    """
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"get_file: bad file name {name!r}")
    url_list = [urls] if isinstance(urls, str) else list(urls)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else cache_folder(subdir)
    dest = folder / name

    stale = None
    if dest.is_file():
        problem = _verify(dest, size, sha256, check, file_hash)
        if problem is None:
            return dest
        stale = problem
        warnings.warn(f"cached {dest} does not match ({problem}); downloading it again", stacklevel=2)

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the cache folder {folder}: {e}") from None

    errors: List[str] = []
    for url in url_list:
        try:
            tmp = _download(url, folder, name, size, timeout, progress)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # network, HTTP, disk: try the next URL
            errors.append(f"  {url}: {_describe(e)}")
            if isinstance(e, urllib.error.HTTPError):
                e.close()
            continue
        try:
            problem = _verify(tmp, size, sha256, check, file_hash)
            if problem is not None:
                errors.append(f"  {url}: downloaded file is corrupt ({problem})")
                continue
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    what = []
    if size is not None:
        what.append(f"{size} bytes ({format_bytes(size)})")
    if sha256 is not None:
        what.append(f"sha256 {sha256}")
    if file_hash is not None:
        what.append(f"{'sha256' if len(file_hash) == 64 else 'md5'} {file_hash}")
    lines = [
        f"Could not get {name}: no cached copy"
        + (f" (the cached one is bad: {stale})" if stale else "")
        + (" and every download failed:" if url_list else " and no URL to download it from."),
        *errors,
        f"Download it yourself from {url_list[0] if url_list else '(no URL known)'}"
        + (f" (or {', '.join(url_list[1:])})" if len(url_list) > 1 else "")
        + f" and put it at {dest}"
        + (f" [{', '.join(what)}]" if what else "")
        + ".",
    ]
    if hint:
        lines.append(hint)
    raise DownloadError("\n".join(lines))
