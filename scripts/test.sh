#!/usr/bin/env bash
# The test command: set the machine up, then lint, type-check and run every test tier.
# Tests that need dockerd, Redis or the S3 server start or require them and fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest -p no:cacheprovider "$@"
