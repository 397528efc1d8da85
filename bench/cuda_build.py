"""A torch CUDA extension package's build stage in the cuda image: cold against warm through the
compiler cache (nvcc's hits counted), and its extensions side by side against one after another.

    .venv/bin/python bench/cuda_build.py [--package pair|scatter] [--archs 9.0]

Every build goes through the real pipeline (`build_and_publish`, docker executor, local store)
against PyPI's CUDA torch 2.13.0 (downloaded once per run into the run's package cache), for
TORCH_CUDA_ARCH_LIST=9.0 on the cores this machine has:

- pair: `tests/fixtures/torch-cuda-pair`, two extensions (a .cpp binding and a .cu kernel each);
- scatter: torch-scatter 2.1.2, the real PyPI sdist (eight extensions; much longer).

Four builds: serial and parallel with the compiler cache off (`build_ext --parallel N` from the
package recipe, N what the worker's cores and memory fit, one compile job per extension,
against the extensions one after another with MAX_JOBS=N), then cold and warm with the cache on
(the warm one a new request with the same build inputs, which verify imports its module by name,
so only the cache can answer it).
Builds of other users on the same Docker engine slow builds down: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from service.config import load_settings
from service.models import BuildRequest
from service.store import LocalStore
from tests.buildkit import make_sdist, request_for
from worker.engine import Hooks, StageEvent
from worker.executors.docker import DockerExecutor
from worker.pipeline import build_and_publish

PACKAGES = {"pair": "torchcudapair", "scatter": "torch-scatter"}


def timed_build(request: BuildRequest, home: Path, store: LocalStore, *, parallel: bool) -> Any:
    """One build; the package's recipe replaced by one that builds extensions side by side, or
    by one that does not (everything else as the project's recipe has it)."""
    package = PACKAGES["scatter"] if request.source.kind == "requirement" else PACKAGES["pair"]
    recipe: dict[str, Any] = {"package": package, "job_memory_gib": 2}
    recipe |= {"parallel_extensions": parallel}
    if package == "torch-scatter":
        recipe["cuda_env"] = {"FORCE_CUDA": "1"}
    settings = load_settings(home=home, recipes=[recipe], keep_workspace=False)
    stages: dict[str, float] = {}
    lines: list[str] = []

    def on_stage(event: StageEvent) -> None:
        if event.seconds is not None:
            stages[event.stage] = event.seconds

    started = time.monotonic()
    outcome = build_and_publish(
        request,
        settings,
        store,
        DockerExecutor(settings),
        hooks=Hooks(on_stage=on_stage, on_line=lines.append),
    )
    manifest = outcome.artifact.manifest
    counts = (manifest.get("compiler_cache") or {}).get("counts") or {}
    return {
        "total_s": round(time.monotonic() - started, 1),
        "build_s": stages.get("build"),
        "max_jobs": manifest["build_env"].get("MAX_JOBS"),
        "parallel_line": next((line for line in lines if "at a time" in line), None),
        "hits_by_language": counts.get("hits_by_language"),
        "misses_by_language": counts.get("misses_by_language"),
    }


def request(package: str, tmp: Path, archs: str) -> BuildRequest:
    common: dict[str, Any] = {
        "target": {"kind": "cuda", "cuda": "13.0"},
        "runtime": ["torch==2.13.0"],  # PyPI's CUDA build: no find-links
        "build_env": {"TORCH_CUDA_ARCH_LIST": archs},
        "timeout_s": 4 * 3600,
    }
    if package == "scatter":
        source = {"kind": "requirement", "requirement": "torch-scatter==2.1.2"}
        return BuildRequest.model_validate({**common, "source": source})
    return request_for(make_sdist("torch-cuda-pair", tmp, "torchcudapair", "0.1.0"), **common)


def package_import(package: str) -> str:
    return "torch_scatter" if package == "scatter" else "torchcudapair"


def run(package: str, archs: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ww-bench-cuda-") as name:
        tmp = Path(name)
        home = tmp / "home"  # one package cache: torch is downloaded once

        def store(label: str) -> LocalStore:  # a store each, so no build answers another
            return LocalStore(tmp / f"store-{label}")

        base = request(package, tmp, archs)
        off = base.model_copy(update={"compiler_cache": False})
        serial = timed_build(off, home, store("serial"), parallel=False)
        parallel = timed_build(off, home, store("parallel"), parallel=True)
        cached = store("cache")
        cold = timed_build(base, home, cached, parallel=False)
        # a new request with the same build inputs (another pin would be another cache scope)
        other = base.model_copy(update={"verify_imports": (package_import(package),)})
        warm = timed_build(other, home, cached, parallel=False)
    result = {
        "bench": f"cuda-{package}",
        "cores": os.cpu_count(),
        "serial": serial,
        "parallel": parallel,
        "cold": cold,
        "warm": warm,
        "parallel_over_serial": round(parallel["build_s"] / serial["build_s"], 3),
        "warm_over_cold": round(warm["build_s"] / cold["build_s"], 3),
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--package", choices=sorted(PACKAGES), default="pair")
    parser.add_argument("--archs", default="9.0")
    args = parser.parse_args()
    if shutil.which("docker") is None:
        raise SystemExit("needs the Docker engine")
    r = run(args.package, args.archs)
    print(
        f"{r['bench']} on {r['cores']} cores: build stage serial {r['serial']['build_s']:.1f}s,"
        f" parallel {r['parallel']['build_s']:.1f}s (ratio {r['parallel_over_serial']});"
        f" cold {r['cold']['build_s']:.1f}s, warm {r['warm']['build_s']:.1f}s through the"
        f" compiler cache (ratio {r['warm_over_cold']}; warm hits {r['warm']['hits_by_language']})"
    )


if __name__ == "__main__":
    main()
