#!/usr/bin/env bash
# The extension built with AddressSanitizer + UndefinedBehaviorSanitizer, running the Python
# test suite's engine tests (default: tests/test_engine_*.py and tests/test_notebook_habits.py)
# once, in a venv of its own so the project's .venv keeps its optimised build.
#   bash csrc/fuzz/run_asan_pytest.sh [pytest arguments]
#   CATDOG_ASAN_VENV  the venv's folder (default: $TMPDIR/catdog_asan_venv)
# Python is not instrumented, so libasan is preloaded (LD_PRELOAD) to own malloc from the
# start. Leak checking is off: CPython, NumPy and oneDNN keep allocations until exit on
# purpose, and LeakSanitizer's report would be theirs. UBSan stops at the first report.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
VENV="${CATDOG_ASAN_VENV:-${TMPDIR:-/tmp}/catdog_asan_venv}"
CC="${CC:-gcc}"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/pip" install --quiet --disable-pip-version-check)
"${PIP[@]}" "setuptools>=77" wheel "numpy>=1.23" onednn-devel-cpu-gomp==2023.2.0 \
    onednn-cpu-gomp==2023.2.0 "h5py>=3.6" "matplotlib>=3.5" "pytest>=7" "pillow>=9"
# Built from a copy of the sources: an in-tree build would reuse the objects (and the
# extension) of the last optimised build in build/. -O1 -g after setup.py's -O3: readable
# reports; the sanitizers link into the extension.
SRC="$VENV/src"
rm -rf "$SRC" && mkdir -p "$SRC"
tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
    -cf - . | tar -C "$SRC" -xf -
CC="$CC" CFLAGS="$SAN -g -O1" LDFLAGS="$SAN" \
    "${PIP[@]}" --no-build-isolation --no-deps --force-reinstall --no-cache-dir "$SRC"
ENGINE="$(ls "$VENV"/lib/python*/site-packages/catdog/_engine*.so)"
if ! readelf -d "$ENGINE" | grep -q 'libasan'; then
    echo "run_asan_pytest.sh: $ENGINE is not linked with libasan" >&2
    exit 1
fi
ASAN_LIB="$("$CC" -print-file-name=libasan.so)"
UBSAN_LIB="$("$CC" -print-file-name=libubsan.so)"
if [ $# -eq 0 ]; then
    set -- tests/test_engine_*.py tests/test_notebook_habits.py
fi
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
# pytest from the venv's bin (not `python -m pytest`), so the installed, sanitized catdog is
# imported rather than the clone's unbuilt source folder.
LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB" "$VENV/bin/pytest" -q -p no:cacheprovider "$@"
