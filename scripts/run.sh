#!/usr/bin/env bash
# Set everything up and run the service on the embedded defaults
# (SQLite + embedded chain under ./data), with demo data on first start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/honest-metering serve "$@"
