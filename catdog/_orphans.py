"""Temporary files of interrupted saves. save_weights writes a hidden temp file beside the
target and renames it into place; a writer killed in between (kill -9, a crashed kernel)
leaves the temp file, as large as the model's weights, behind. Its name carries the
writer's host and pid, so the next save to that folder can remove the temporaries of writers
that no longer exist, and never one still being written (a live pid, of this user or
another, or a writer on another host sharing the folder)."""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path

# .<target name>.catdog-<host>-<pid>.<random>.tmp
_TMP = re.compile(r"^\..+\.catdog-([A-Za-z0-9]*)-(\d+)\.[^.]+\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]


def prefix(dest: Path) -> str:
    """The temp-file prefix for writing `dest` from this process."""
    return f".{dest.name}.catdog-{_host()}-{os.getpid()}."


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a pid we wrote: leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's), or cannot tell: leave it
    return True


def remove_dead(folder: Path) -> list:
    """Remove catdog temp files in `folder` whose writer process is gone; returns their
    paths. Errors (a file removed meanwhile, no permission) are ignored: cleaning up must
    never make a save fail."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    host = _host()
    for name in names:
        m = _TMP.match(name)
        if not m or m.group(1) != host or _alive(int(m.group(2))):
            continue
        path = Path(folder) / name
        try:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path)
        except OSError:
            pass
    return removed
