#!/usr/bin/env bash
# Builds benchmarks/profile/primitive_timer.so (a profiling shim, never part of catdog) against
# the oneDNN headers of the version catdog's venv runs: the matching onednn-devel-cpu-gomp
# wheel is downloaded once into benchmarks/profile/.onednn-devel (git-ignored).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$(dirname "$here")")"
venv="${CATDOG_VENV:-$root/.venv}"
[ -x "$venv/bin/python" ] || { echo "no catdog venv at $venv: run bash scripts/test.sh first" >&2; exit 1; }
version="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("onednn-cpu-gomp"))')"
inc="$here/.onednn-devel/$version/include"
if [ ! -f "$inc/oneapi/dnnl/dnnl.h" ]; then
  tmp="$(mktemp -d)"
  "$venv/bin/python" -m pip download -q --no-deps "onednn-devel-cpu-gomp==$version" -d "$tmp"
  "$venv/bin/python" -m zipfile -e "$tmp"/onednn_devel_cpu_gomp-*.whl "$tmp/x"
  mkdir -p "$(dirname "$inc")"
  cp -r "$tmp"/x/*.data/data/include "$inc"
  rm -rf "$tmp"
fi
gcc -std=c11 -O2 -Wall -shared -fPIC -I"$inc" "$here/primitive_timer.c" -o "$here/primitive_timer.so" \
  -L"$venv/lib" -Wl,-rpath,"$venv/lib" -ldnnl -ldl
echo "built $here/primitive_timer.so (oneDNN headers $version)"
