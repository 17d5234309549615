#!/usr/bin/env bash
# The README's test command: installs catdog and its test extras into the project environment
# (.venv, see scripts/_venv.sh), then runs pytest on tests/ against the installed package.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k engine`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" "[test]"
cd "$ROOT"
# pytest's own executable (not `python -m pytest`, which would put the clone's root, and so the
# unbuilt source folder catdog/, first on sys.path): tests import the installed package.
exec "$VENV/bin/pytest" -ra "$@"
