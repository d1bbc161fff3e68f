#!/usr/bin/env bash
# Set everything up and run the whole test suite: lint, types, tests.
# Under CI=true a missing PostgreSQL, anvil, compiler or browser fails the
# run instead of skipping its tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
export HM_TEST_POSTGRES_URL="${HM_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}"
echo "==> ruff"
.venv/bin/ruff check backend scripts tests
echo "==> mypy"
.venv/bin/mypy backend
echo "==> pytest"
.venv/bin/python -m pytest "$@"
