"""Find and preload oneDNN (and the SYCL/TBB libraries it needs) before the engine loads.

The PyPI `onednn` wheel puts libdnnl.so.3 in <prefix>/lib, beside libsycl, libtbb, ...; its
own RUNPATH does not point there, so we load it by absolute path (RTLD_GLOBAL), loading any
dependency the dynamic linker reports missing from the same folder first. The wheel's oneDNN
runs CPU kernels through SYCL's OpenCL CPU device, whose ICD file ships with a placeholder
path, so we point the OpenCL loader at the real libintelocl.so (unless the user already did).
No LD_LIBRARY_PATH needed.
"""
import ctypes
import os
import re
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
    lib = _wheel_file("onednn", "libdnnl.so.3")
    if lib:
        dirs.append(os.path.dirname(lib))
    dirs += [os.path.join(sys.prefix, "lib"), os.path.join(sys.base_prefix, "lib")]
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def _load(path, libdir, depth=0):
    """ctypes-load `path`; on 'libX: cannot open', load libX from libdir first and retry."""
    for _ in range(64):
        try:
            handle = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            _loaded.append(handle)
            return handle
        except OSError as e:
            m = re.search(r"([^\s:]+\.so[.\d]*): cannot open shared object file", str(e))
            dep = m and os.path.join(libdir, m.group(1))
            if not dep or depth > 8 or not os.path.exists(dep) or dep == path:
                raise
            _load(dep, libdir, depth + 1)
    raise OSError(f"catdog: could not load {path}")


def preload():
    # oneDNN's threads (TBB) and catdog's own loops (OpenMP) share the cores: OpenMP workers
    # that spin after a loop would steal them from TBB (4x slower steps measured on 2 busy
    # cores), so they sleep instead unless the user chose otherwise. Read at libgomp load.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if os.environ.get("CATDOG_SKIP_PRELOAD"):
        return
    for d in _candidate_dirs():
        dnnl = os.path.join(d, "libdnnl.so.3")
        if not os.path.exists(dnnl):
            continue
        ocl = os.path.join(d, "libintelocl.so")
        if os.path.exists(ocl) and "OCL_ICD_FILENAMES" not in os.environ:
            os.environ["OCL_ICD_FILENAMES"] = ocl
        _load(dnnl, d)
        return
    # No wheel found: rely on the system linker (a system oneDNN via CATDOG_ONEDNN_ROOT/ldconfig).
