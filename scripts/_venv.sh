# Sourced by lab.sh and test.sh: makes (once) the project's virtual environment, installs
# catdog into it from this clone with pip, and sets PY to the environment's python.
#   CATDOG_VENV  the environment's folder (default: .venv at the clone's root)
#   PYTHON       the interpreter to make it with (default: python3 on PATH); Python >= 3.9
#   $1           pip extras to install, e.g. "[test]"
# A virtual environment is what works everywhere: a pyenv or conda Python, and a Debian/Ubuntu
# system Python, whose pip refuses to install outside one (PEP 668, externally-managed).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CATDOG_VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
BASE_PY="${PYTHON:-python3}"
PY="$VENV/bin/python"

catdog_make_venv() {
    if ! command -v "$BASE_PY" >/dev/null 2>&1; then
        echo "catdog: no '$BASE_PY' found; install Python >= 3.9 or set PYTHON=/path/to/python" >&2
        return 1
    fi
    echo "catdog: making the project environment $VENV with $("$BASE_PY" --version 2>&1)" >&2
    if "$BASE_PY" -m venv "$VENV" 2>/dev/null; then return 0; fi
    # Debian/Ubuntu without python3-venv have venv but not ensurepip: make the environment
    # without pip, then give it pip with the system's own pip (downloaded from PyPI).
    rm -rf "$VENV"
    "$BASE_PY" -m venv --without-pip "$VENV" || return 1
    if "$BASE_PY" -m pip --version >/dev/null 2>&1; then
        local wheels
        wheels="$(mktemp -d)"
        "$BASE_PY" -m pip download --quiet --no-deps --disable-pip-version-check -d "$wheels" pip &&
            "$PY" "$(ls "$wheels"/pip-*.whl)/pip" install --quiet --no-index "$(ls "$wheels"/pip-*.whl)"
        local rc=$?
        rm -rf "$wheels"
        [ $rc = 0 ] && return 0
    fi
    echo "catdog: could not give $VENV a pip. On Debian/Ubuntu: apt-get install python3-venv;" \
         "elsewhere set PYTHON to a Python that has venv and pip." >&2
    return 1
}

if ! "$PY" -m pip --version >/dev/null 2>&1; then
    catdog_make_venv || exit 1
fi
"$PY" -m pip install --quiet --disable-pip-version-check "$ROOT${1:-}" || {
    echo "catdog: installing catdog into $VENV failed (see pip's output above)" >&2
    exit 1
}
