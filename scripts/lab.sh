#!/usr/bin/env bash
# The README's lab command: installs catdog and runs the whole lab (python -m catdog.lab).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_system_deps.sh
python3 -m pip install --quiet --disable-pip-version-check .
cd "${CATDOG_LAB_CWD:-.}"
exec python3 -m catdog.lab "$@"
