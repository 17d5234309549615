"""Opening a `.keras` archive from anywhere without trusting it.

A `.keras` file is a zip (keras/src/saving/saving_lib.py): `config.json`, `metadata.json`,
`model.weights.h5`, maybe `assets/...`. catdog reads the three members it needs into memory
and never extracts anything, so nothing is written to disk while loading. Before reading,
every member is checked:

* names: no absolute paths, no `..` component, no backslashes or drive letters, no NUL
  (a name that would escape a folder is refused even though catdog extracts nothing, so a
  hostile file is reported, not silently half-read);
* counts and sizes (the zip-bomb bounds, stated here and in docs): at most MAX_MEMBERS
  members; `config.json` and `metadata.json` at most MAX_JSON_BYTES each; the weights at
  most MAX_WEIGHTS_BYTES; the declared sizes of all members at most MAX_TOTAL_BYTES; and no
  member may expand more than MAX_RATIO times its stored size once it is above 1 MiB
  (Keras stores members uncompressed, ratio ~1). Reads stop at the declared size, so a
  member that lies about its size cannot make catdog read more;
* the archive itself: a truncated or corrupt zip (bad central directory, CRC error) is a
  ValueError naming the file.
"""
from __future__ import annotations

import io
import struct
import zipfile

MAX_MEMBERS = 64
MAX_JSON_BYTES = 16 << 20  # 16 MiB: a MobileNetV2 config is ~0.2 MiB
MAX_WEIGHTS_BYTES = 2 << 30  # 2 GiB
MAX_TOTAL_BYTES = 4 << 30  # 4 GiB declared over all members
MAX_RATIO = 100  # uncompressed / stored, for members above RATIO_FLOOR
RATIO_FLOOR = 1 << 20

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"


# What zipfile raises on a damaged archive: BadZipFile, NotImplementedError (an unknown zip
# version or compression method), RuntimeError (an encrypted member), EOFError, OSError,
# struct errors and overflows on absurd header fields.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
               EOFError, OSError, ValueError, OverflowError, UnicodeDecodeError, struct.error)


class UnsafeArchive(ValueError):
    """A `.keras` file catdog refuses to read (its message says why)."""


def _check_name(source, name: str) -> None:
    bad = (not name or name.startswith(("/", "\\")) or "\\" in name or "\x00" in name
           or (len(name) > 1 and name[1] == ":")
           or any(part == ".." for part in name.split("/")))
    if bad:
        raise UnsafeArchive(f"{source}: refusing archive member {name!r}: its name escapes the "
                            "archive's folder (absolute path, '..', backslash or drive)")


def open_archive(source, data) -> zipfile.ZipFile:
    """A ZipFile over `data` (bytes or a binary file object), every member checked as above."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{source}: not a .keras file or a truncated one (not a readable zip "
                         f"archive: {e})") from None
    except _ZIP_ERRORS as e:
        raise ValueError(f"{source}: not a .keras file or a corrupt one (unreadable zip "
                         f"archive: {type(e).__name__}: {e})") from None
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UnsafeArchive(f"{source}: {len(infos)} archive members, more than the "
                            f"{MAX_MEMBERS} catdog reads (a .keras file has 3 or 4)")
    total = 0
    for info in infos:
        _check_name(source, info.filename)
        total += info.file_size
        if (info.file_size > RATIO_FLOOR
                and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
            raise UnsafeArchive(
                f"{source}: archive member {info.filename!r} declares {info.file_size} bytes "
                f"from {info.compress_size} stored: refusing a likely zip bomb (bound: "
                f"{MAX_RATIO}x above {RATIO_FLOOR} bytes)")
    if total > MAX_TOTAL_BYTES:
        raise UnsafeArchive(f"{source}: the archive declares {total} bytes in all, more than "
                            f"catdog's bound of {MAX_TOTAL_BYTES}")
    return zf


def read_member(source, zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The member's bytes, at most `limit` (its declared size is checked first, and the read
    stops at limit + 1 bytes whatever the header says)."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ValueError(f"{source}: not a Keras 3 .keras file: no {name!r} in the archive "
                         f"(members: {', '.join(zf.namelist()[:6]) or 'none'})") from None
    if info.file_size > limit:
        raise UnsafeArchive(f"{source}: archive member {name!r} declares {info.file_size} bytes,"
                            f" more than catdog's bound of {limit}")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except _ZIP_ERRORS as e:
        raise ValueError(f"{source}: archive member {name!r} is truncated or corrupt "
                         f"({type(e).__name__}: {e})") from None
    if len(data) > limit:
        raise UnsafeArchive(f"{source}: archive member {name!r} is larger than catdog's bound "
                            f"of {limit} bytes")
    return data
