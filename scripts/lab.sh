#!/usr/bin/env bash
# The README's lab command: installs catdog into the project environment (.venv, see
# scripts/_venv.sh) and runs the whole lab there. Arguments go to the lab (`--help` lists them);
# relative paths and the output folder (./lab_output) are taken from where you run it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" ""
# The `catdog-lab` entry point, not `python -m`: -m puts the current folder first on sys.path,
# and at the clone's root that is the unbuilt source folder catdog/.
exec "$VENV/bin/catdog-lab" "$@"
