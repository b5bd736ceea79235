#!/usr/bin/env bash
# Install everything the tests need, then run them (the README's test command; CI runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
export MLFLOW_ALLOW_FILE_STORE=true OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
