#!/usr/bin/env bash
# Everything a fresh Debian machine needs before Wheelwright runs here: the host services
# (Debian packages, a Docker engine), the project's virtual environment in .venv, and the build
# images (made from a debootstrap'd Debian when no registry is reachable). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

bash scripts/host-services.sh

if [ ! -x .venv/bin/wheelwright ] || [ pyproject.toml -nt .venv/.installed ]; then
  say "creating .venv and installing wheelwright with its dev tools"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade uv
  .venv/bin/uv pip install -q --python .venv/bin/python -e '.[dev]'
  touch .venv/.installed
fi

for target in ${WHEELWRIGHT_SETUP_IMAGES:-cpu cuda}; do
  say "build image: $target"
  .venv/bin/wheelwright images build --target "$target" >/dev/null
done
say "ready"
