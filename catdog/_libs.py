"""Find and preload oneDNN before the engine loads.

The PyPI `onednn-cpu-gomp` wheel puts libdnnl.so.3 in <prefix>/lib, which the extension's
RUNPATH covers for a normal install; for other layouts (an in-place build, a venv whose prefix
differs, CATDOG_ONEDNN_ROOT) we load it by absolute path with RTLD_GLOBAL first, so the
extension binds to it. No LD_LIBRARY_PATH needed.
"""
import ctypes
import os
import sys
from importlib import metadata

_loaded = []


def _wheel_file(dist_name, suffix):
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if str(f).replace("\\", "/").endswith(suffix):
            p = os.path.normpath(str(dist.locate_file(f)))
            if os.path.exists(p):
                return p
    return None


def _candidate_dirs():
    dirs = []
    root = os.environ.get("CATDOG_ONEDNN_ROOT")
    if root:
        dirs.append(os.path.join(root, "lib"))
    lib = _wheel_file("onednn-cpu-gomp", "libdnnl.so.3")
    if lib:
        dirs.append(os.path.dirname(lib))
    dirs += [os.path.join(sys.prefix, "lib"), os.path.join(sys.base_prefix, "lib")]
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def preload():
    # oneDNN and catdog's own loops share one GNU OpenMP runtime. Between two primitives of a
    # step its workers should spin, not sleep: a futex wake-up per parallel region made
    # batch-1 predict 2x slower and fine-tuning ~10% slower (OMP_WAIT_POLICY=PASSIVE,
    # measured), while a bounded spin then sleeping keeps an idle notebook from burning the
    # cores (ACTIVE would spin ~forever). Read when libgomp loads; the user's settings win.
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "3000000")
    if os.environ.get("CATDOG_SKIP_PRELOAD"):
        return
    for d in _candidate_dirs():
        dnnl = os.path.join(d, "libdnnl.so.3")
        if os.path.exists(dnnl):
            _loaded.append(ctypes.CDLL(dnnl, mode=ctypes.RTLD_GLOBAL))
            return
    # No wheel found: rely on the system linker (a system oneDNN via CATDOG_ONEDNN_ROOT/ldconfig).
