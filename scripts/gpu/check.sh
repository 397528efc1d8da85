#!/usr/bin/env bash
# The GPU-node check of verify (issue 13), as one script for a machine with a GPU, nvcc, torch
# and no Docker or network (an HPC node). It builds with the host executor against the node's
# own torch (WHEELWRIGHT_HOST__INHERIT_PACKAGES), offline (--no-index), from sdists carried in:
#   cudafix        the CUDA fixture for TORCH_CUDA_ARCH_LIST=9.0; verify launches its kernel
#   cudafix-sm80   the fixture built for 8.0 only: the audit passes, the kernel cannot run on a
#                  9.0 GPU ("no kernel image"), so verify must fail and nothing is published
#   torchcuda      a torch CUDAExtension (tests/fixtures/torch-cuda-ext); its kernel against torch
#                  on the CPU
#   scatter        torch-scatter 2.1.2 from its PyPI sdist, FORCE_CUDA=1, 9.0; verify runs
#                  its CUDA kernels against its CPU kernels
# Usage: bash scripts/gpu/check.sh CARRIED   (CARRIED/whl: wheels of wheelwright and what it
# needs that the node lacks, installed into /tmp/site; CARRIED/src: the sdists)
# Results under $OUT (default /tmp/gpu-out): a summary, each build's JSON and log, manifests.
set -uo pipefail
carried=${1:?the folder of carried wheels and sdists}
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: >"$summary"
note() { printf '%s\n' "$*" | tee -a "$summary"; }

if [ -d "$carried/whl" ] && [ -z "${GPU_CHECK_NO_INSTALL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$carried"/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
py=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
export PATH="$(dirname "$(python3 -c 'import sys; print(sys.executable)')"):$PATH"
nvcc_path=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$nvcc_path")")")}
export PATH="$CUDA_HOME/bin:$PATH"
export WHEELWRIGHT_HOME=${WHEELWRIGHT_HOME:-/tmp/wwhome} WHEELWRIGHT_EXECUTOR=host
export WHEELWRIGHT_HOST__INHERIT_PACKAGES=true
note "python $py at $(command -v python3); CUDA_HOME=$CUDA_HOME; $(nvcc --version | tail -1)"
note "torch: $(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available())' 2>&1)"
note "gpu: $(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader 2>&1)"

build() {  # NAME SDIST ARCHS SMOKE [EXTRA...]
  local name=$1 sdist=$2 archs=$3 smoke=$4
  shift 4
  local started=$SECONDS
  python3 -m service.cli build "$sdist" --executor host --target cuda --cuda 13.0 --python "$py" \
    --no-index --runtime torch --env TORCH_CUDA_ARCH_LIST="$archs" --env FORCE_CUDA=1 --smoke-test "@$smoke" \
    --timeout "${GPU_CHECK_TIMEOUT:-1500}" --json "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"
  local code=$?
  note "$name: exit $code in $((SECONDS - started)) s; $(tail -c 600 "$OUT/$name.err" | tr '\n' ' ')"
  return $code
}

make_fixture() {  # FIXTURE TOP: a fixture folder as an sdist whose top folder is TOP
  local dest=/tmp/gpu-sdists
  rm -rf "${dest:?}/$2" && mkdir -p "$dest/$2"
  cp -r "$here/../../tests/fixtures/$1/." "$dest/$2/"
  tar -C "$dest" -czf "$dest/$2.tar.gz" "$2"
  echo "$dest/$2.tar.gz"
}

fixture=$(make_fixture cuda-ext cudafix-0.1.0)
for step in ${GPU_CHECK_BUILDS:-cudafix cudafix-sm80 torchcuda scatter}; do
  case $step in
    cudafix) build cudafix "$fixture" 9.0 "$here/smoke_cudafix.py" ;;
    torchcuda)
      build torchcuda "$(make_fixture torch-cuda-ext torchcudafix-0.1.0)" 9.0 \
        "$here/smoke_torchcudafix.py" ;;
    cudafix-sm80)
      if build cudafix-sm80 "$fixture" 8.0 "$here/smoke_cudafix.py" --local-label sm80; then
        note "cudafix-sm80: UNEXPECTED: verify passed a wheel with no code for this GPU"
      elif grep -q "smoke test failed" "$OUT/cudafix-sm80.err"; then
        note "cudafix-sm80: refused by the smoke test, as it must be"
      else
        note "cudafix-sm80: UNEXPECTED: failed before the smoke test"
      fi ;;
    scatter)
      build scatter "$carried/src/torch_scatter-2.1.2.tar.gz" 9.0 "$here/smoke_torch_scatter.py" ;;
  esac
done
python3 - "$WHEELWRIGHT_HOME" >"$OUT/manifests.json" <<'PY'
import json, pathlib, sys
home = pathlib.Path(sys.argv[1])
found = {}
for path in sorted(home.glob("store/builds/**/*.json")):
    m = json.loads(path.read_text())
    v = m.get("verify", {})
    found[m["wheel"]["filename"]] = {
        "stages": m.get("stages"), "verify": v, "runtime_freeze_torch":
        [l for l in m.get("runtime_freeze", []) if l.startswith("torch==")],
    }
print(json.dumps(found, indent=1))
PY
for log in "$WHEELWRIGHT_HOME"/logs/*.log; do tail -n 60 "$log"; done >"$OUT/logs-tail.txt" 2>/dev/null
note "done"
