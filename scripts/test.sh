#!/usr/bin/env bash
# The README's test command: installs everything catdog needs on a fresh machine
# (libstb-dev from apt, the package and its test extras from PyPI), then runs pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k engine`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_system_deps.sh
python3 -m pip install --quiet --disable-pip-version-check ".[test]"
# Run from tests/ so `import catdog` takes the installed package, not the source folder.
cd tests
exec python3 -m pytest -ra "$@"
