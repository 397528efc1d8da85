"""flash-attn 2.8.3 from its real PyPI sdist, as a user asks for it with no flags of its own:
`flash-attn==2.8.3 --target cuda --runtime torch==2.13.0 --env TORCH_CUDA_ARCH_LIST=9.0`.

Its recipe sets FLASH_ATTENTION_FORCE_BUILD (else setup.py downloads a wheel from GitHub first),
derives FLASH_ATTN_CUDA_ARCHS from TORCH_CUDA_ARCH_LIST, adds the build deps it imports without
declaring, and fits MAX_JOBS and NVCC_THREADS to the worker. The whole build needs nvcc for
hours; the test follows the real pipeline (fetch from PyPI, PyPI's CUDA torch in the runtime
stage, the package's setup.py in the requires and build stages, network off) until torch's
BuildExtension has written the build.ninja it compiles from (ninja logs a command only once it
has finished, minutes later), then cancels the build, and checks what nvcc was given there: the
architectures the audit would check, the threads the plan chose, and no download tried.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.config import load_settings
from service.errors import BuildCancelledError
from service.models import parse_request
from service.prepare import prepare
from service.store.local import LocalStore
from worker.driver.audit import parse_arch_list
from worker.engine import Hooks
from worker.executors.docker import DockerExecutor
from worker.pipeline import build_and_publish
from worker.plan import GIB, Layout, Machine, make_plan

pytestmark = pytest.mark.docker
GENCODE_RE = re.compile(r"-gencode[ =]arch=compute_(\d+),code=sm_(\d+)")


def test_flash_attn_setup_py_compiles_for_the_audited_archs_without_downloading(
    tmp_path: Path, cuda_image: str, cuda_torch_home: Path
) -> None:
    settings = load_settings(home=cuda_torch_home, keep_workspace=False)
    request = parse_request(
        {
            "source": {"kind": "requirement", "requirement": "flash-attn==2.8.3"},
            "target": {"kind": "cuda", "cuda": "13.0"},
            "runtime": ["torch==2.13.0"],
            "build_env": {"TORCH_CUDA_ARCH_LIST": "9.0"},
            "timeout_s": 2400,
        }
    )
    prepared = prepare(request, settings, executor="docker")
    assert prepared.request.recipe is not None
    assert prepared.request.build_env["FLASH_ATTENTION_FORCE_BUILD"] == "TRUE"
    executor = DockerExecutor(settings)

    lines: list[str] = []
    compiling: list[str] = []

    def started() -> bool:
        """Whether ninja was handed the kernels: BuildExtension's build.ninja in the workspace,
        asked each time the executor checks for a cancel."""
        if not compiling:
            for found in settings.work_dir.glob("*/src/flash_attn-*/build/temp.*/build.ninja"):
                text = found.read_text(encoding="utf-8", errors="replace")
                compiling.extend(line for line in text.splitlines() if "-gencode" in line)
        return bool(compiling)

    hooks = Hooks(on_line=lines.append, cancelled=started)
    with pytest.raises(BuildCancelledError, match="during build"):
        build_and_publish(prepared, settings, LocalStore(tmp_path / "store"), executor, hooks=hooks)
    log = "\n".join(lines)
    assert compiling, log[-4000:]
    assert "building 'flash_attn_2_cuda' extension" in log

    # what nvcc compiles for is what verify's audit would check
    layout = Layout(work="/ww/work", driver="/ww/driver", python="python3", uv="uv")
    plan = make_plan(prepared.request, layout, Machine(cpus=2, memory_bytes=16 * GIB))
    audited = plan.stage("verify").request["cuda_arch_list"]
    assert audited == "9.0"
    flags = "\n".join(compiling)  # cuda_post_cflags: what each nvcc job is given
    given = {f"sm_{sm}" for compute, sm in GENCODE_RE.findall(flags) if compute == sm}
    assert given == set(parse_arch_list(audited)[0]) == {"sm_90"}
    # the jobs and threads the worker's plan chose (the engine's line names them)
    chosen = re.search(r"build environment: .*\bMAX_JOBS=(\d+), NVCC_THREADS=(\d+)", log)
    assert chosen is not None, log[-4000:]
    assert f"--threads {chosen.group(2)}" in flags
    assert "FLASH_ATTN_CUDA_ARCHS=90" in log
    assert "recipe flash-attn>=2.0 (builtin)" in log
    # FORCE_BUILD: no wheel URL guessed, no download tried with the network off
    assert "Guessing wheel URL" not in log
    assert "==> network: the build looks up" not in log
    assert "torch.__version__  = 2.13.0" in log  # PyPI's CUDA torch, in setup.py
