"""Build the C engine (csrc/) into the extension module catdog._engine.

oneDNN comes from the `onednn-devel-cpu-gomp` wheel (headers) and `onednn-cpu-gomp` wheel
(libdnnl.so, a CPU-only build threaded with GNU OpenMP, the runtime catdog's own loops use too),
both build requirements.
Set CATDOG_ONEDNN_ROOT=/usr (or any prefix with include/ and lib/) to use a system oneDNN.
stb_image is vendored (csrc/third_party/stb), so the build needs only a C compiler and PyPI.
"""
import glob
import os
import sys
from importlib import metadata

import numpy
from setuptools import Extension, setup


def wheel_file(dist_name, file_name):
    """Absolute path of `file_name` shipped by an installed wheel (data files included)."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if str(f).replace("\\", "/").endswith(file_name):
            return os.path.normpath(str(dist.locate_file(f)))
    return None


def onednn_dirs():
    root = os.environ.get("CATDOG_ONEDNN_ROOT")
    if root:
        return os.path.join(root, "include"), os.path.join(root, "lib")
    header = wheel_file("onednn-devel-cpu-gomp", "include/oneapi/dnnl/dnnl.h")
    lib = wheel_file("onednn-cpu-gomp", "libdnnl.so")
    if not header or not lib:
        sys.exit("catdog: oneDNN not found. `pip install onednn-devel-cpu-gomp==2023.2.0` (a build "
                 "requirement) or set CATDOG_ONEDNN_ROOT to a prefix holding include/ and lib/.")
    return os.path.dirname(os.path.dirname(os.path.dirname(header))), os.path.dirname(lib)


dnnl_inc, dnnl_lib = onednn_dirs()
sources = sorted(glob.glob("csrc/**/*.c", recursive=True))
sources = [s for s in sources if "/fuzz/" not in s]
# Every header under csrc/ (ours and the vendored stb_image.h): editing one rebuilds the engine.
headers = sorted(glob.glob("csrc/**/*.h", recursive=True))
include_dirs = ["csrc", dnnl_inc, numpy.get_include()]
library_dirs = [dnnl_lib]

engine = Extension(
    "catdog._engine",
    sources=sources,
    depends=headers,
    include_dirs=include_dirs,
    library_dirs=library_dirs,
    libraries=["dnnl", "m"],
    # site-packages/catdog/_engine*.so -> <prefix>/lib holds libdnnl.so.3 when installed from
    # the wheels; catdog/_libs.py preloads it in any other layout.
    runtime_library_dirs=["$ORIGIN/../../..", "$ORIGIN/../../../.."],
    # -fno-math-errno: sqrtf never sets errno here, so loops with it vectorise (vsqrtps is as
    # exact as sqrtss: same bits). -fno-trapping-math: nothing reads the floating-point
    # exception flags, so loops with selects (x > 0 ? x : 0, hard_sigmoid's range test)
    # if-convert and vectorise; IEEE results are unchanged (no reassociation, no fast math).
    extra_compile_args=["-O3", "-fopenmp", "-Wall", "-Wno-unknown-pragmas", "-fno-strict-aliasing",
                        "-fno-math-errno", "-fno-trapping-math"],
    # -s: the shipped extension carries no symbol table or debug sections.
    extra_link_args=["-fopenmp", "-s"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("_GNU_SOURCE", "1")],
    language="c",
)


from setuptools.command.build_ext import build_ext  # noqa: E402


class catdog_build_ext(build_ext):
    """C sources get -std=c11 (not in extra_compile_args: setuptools passes those to the linker
    too). The link drops the interpreter's own -rpath flags (a pyenv or custom-built Python puts
    `-Wl,-rpath,<its prefix>/lib` in LDSHARED): a wheel must not carry the build machine's paths,
    only the $ORIGIN-relative RUNPATH above."""

    def build_extension(self, ext):
        self.compiler.linker_so = [a for a in self.compiler.linker_so if not a.startswith("-Wl,-rpath")]
        original = self.compiler._compile

        def _compile(obj, src, ext_, cc_args, extra_postargs, pp_opts):
            return original(obj, src, ext_, cc_args, extra_postargs + ["-std=c11"], pp_opts)

        self.compiler._compile = _compile
        try:
            super().build_extension(ext)
        finally:
            self.compiler._compile = original


setup(ext_modules=[engine], cmdclass={"build_ext": catdog_build_ext})
