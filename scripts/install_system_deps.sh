#!/usr/bin/env bash
# System packages catdog builds against: stb_image (Debian/Ubuntu libstb-dev).
set -euo pipefail
if [ -f /usr/include/stb/stb_image.h ] || [ -n "${CATDOG_STB_INCLUDE:-}" ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libstb-dev
