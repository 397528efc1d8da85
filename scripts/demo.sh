#!/usr/bin/env bash
# The main job on the embedded default (no Redis, no S3): set the machine up, then build a torch
# C++ extension whose setup.py imports torch, against a pinned torch, in a fresh container, and
# store the wheel in the local store (~/.local/share/wheelwright/store). Any `wheelwright build`
# arguments replace the default example.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELWRIGHT_SETUP_IMAGES=cpu bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
  torch_links=${PIP_FIND_LINKS:-/opt/wheels}
  set -- tests/fixtures/torch-ext --runtime torch==2.13.0 --find-links "$torch_links"
fi
exec .venv/bin/wheelwright build "$@"
