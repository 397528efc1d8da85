#!/usr/bin/env bash
# The test command: set the machine up, then lint, type-check and run every test tier.
# Tests that need dockerd, Redis or the S3 server start or require them and fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
if [ "$#" -gt 0 ]; then  # a chosen selection, as pytest takes it
  echo "== pytest $*"; exec .venv/bin/pytest -p no:cacheprovider "$@"
fi
# The fast tier first (no services, seconds): a broken build fails here, before any container.
echo "== pytest: unit"; .venv/bin/pytest -p no:cacheprovider tests/unit
# Then every other tier folder (integration, e2e, browser: real dockerd, Redis, the S3 server,
# uv, pip, chromium), whatever folders there are.
mapfile -t tiers < <(find tests -mindepth 1 -maxdepth 1 -type d ! -name unit ! -name fixtures ! -name '__*' | sort)
echo "== pytest: ${tiers[*]}"
.venv/bin/pytest -p no:cacheprovider "${tiers[@]}"
