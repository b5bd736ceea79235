#!/usr/bin/env bash
# Set up Audio Studio on a fresh Debian machine: Debian packages (packages.txt; with --dev also the
# test-only ones), a virtual environment in .venv, and the Python requirements.
#   bash scripts/setup.sh          # run time (studio + CLI)
#   bash scripts/setup.sh --dev    # + tests (chromium for browser tests, small soundfont)
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1
pkgs=$(grep -v '^#' packages.txt | xargs)
[ $DEV = 1 ] && pkgs="$pkgs chromium timgm6mb-soundfont"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  echo "Installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if [ $DEV = 1 ]; then
  .venv/bin/python -m pip install -q -r requirements-dev.txt
else
  .venv/bin/python -m pip install -q -r requirements.txt
fi
if .venv/bin/python -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "warning: CUDA packages were installed next to torch (expected the CPU build)" >&2
fi
echo "Audio Studio is set up in .venv"
