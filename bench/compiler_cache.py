"""What the compiler cache saves: warm/cold build-stage time, and what bringing and saving cost.

    .venv/bin/python bench/compiler_cache.py [--only fixture|scatter] [--image TAG]

Every build goes through the real pipeline (`build_and_publish`, docker executor, local store)
from a fresh home, so the first build of each pair is cold (nothing stored):

1. fixture: `tests/fixtures/torch-multi` (nine C++ translation units against torch 2.13.0 CPU),
   then a new source archive of it with one file changed. Goal: warm/cold <= 0.3.
2. scatter: torch-scatter 2.1.2 (the real PyPI sdist) against torch 2.13.0 CPU, then the same
   sources as a new request: a new environment that differs only in an unrelated runtime pin
   (`six`). Goal: warm/cold <= 0.2. (4 to 8 minutes cold on 2 cores.)

For each pair: the build stage's seconds cold and warm, sccache's counts, and the seconds spent
bringing the cache from the store and saving it back, against the build seconds saved. Builds of
other users on the same Docker engine slow builds down: the load average is printed too.
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
from tests.integration.cachekit import sdist_of
from tests.integration.enginekit import FIXTURES, request_for, torch_find_links
from worker.engine import Hooks, StageEvent
from worker.executors.docker import DockerExecutor
from worker.pipeline import build_and_publish

FIXTURE_GOAL, SCATTER_GOAL = 0.3, 0.2


def timed_build(request: BuildRequest, home: Path, store: LocalStore) -> dict[str, Any]:
    settings = load_settings(home=home, sources={"find_links": [torch_find_links()]})
    stages: dict[str, float] = {}

    def on_stage(event: StageEvent) -> None:
        if event.seconds is not None:
            stages[event.stage] = event.seconds

    started = time.monotonic()
    outcome = build_and_publish(
        request, settings, store, DockerExecutor(settings), hooks=Hooks(on_stage=on_stage)
    )
    cache = outcome.artifact.manifest.get("compiler_cache", {})
    return {
        "total_s": round(time.monotonic() - started, 1),
        "stages": stages,
        "counts": {k: v for k, v in (cache.get("counts") or {}).items() if not isinstance(v, dict)},
        "sha256": outcome.artifact.sha256,
    }


def pair(name: str, cold: BuildRequest, warm: BuildRequest, goal: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"ww-bench-{name}-") as tmp:
        store = LocalStore(Path(tmp) / "store")
        first = timed_build(cold, Path(tmp) / "home", store)
        second = timed_build(warm, Path(tmp) / "home", store)
    build_cold, build_warm = first["stages"]["build"], second["stages"]["build"]
    moving = sum(
        run["stages"].get(s, 0.0)
        for run in (first, second)
        for s in ("compiler_cache_in", "compiler_cache_out")
    )
    result = {
        "bench": name,
        "cold": first,
        "warm": second,
        "build_stage_ratio": round(build_warm / build_cold, 3),
        "goal": goal,
        "cache_bring_and_save_s": round(moving, 2),
        "build_s_saved": round(build_cold - build_warm, 1),
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def fixture(image: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ww-bench-src-") as tmp:
        base = Path(tmp)
        first = sdist_of(FIXTURES / "torch-multi", base / "a", "torchmulti", "0.1.0")
        second = sdist_of(
            FIXTURES / "torch-multi",
            base / "b",
            "torchmulti",
            "0.1.0",
            changes={"src/torchmulti/csrc/op_scaled.cpp": ("SCALE 2.0", "SCALE 3.0")},
        )
        common: dict[str, Any] = {
            "runtime": ["torch==2.13.0"],
            "index": {"find_links": [torch_find_links()]},
            "target": {"image": image},
        }
        return pair(
            "fixture", request_for(first, **common), request_for(second, **common), FIXTURE_GOAL
        )


def scatter(image: str) -> dict[str, Any]:
    common: dict[str, Any] = {
        "source": {"kind": "requirement", "requirement": "torch-scatter==2.1.2"},
        "index": {"find_links": [torch_find_links()]},
        "target": {"image": image},
    }
    cold = BuildRequest.model_validate({**common, "runtime": ["torch==2.13.0"]})
    warm = BuildRequest.model_validate({**common, "runtime": ["torch==2.13.0", "six==1.17.0"]})
    return pair("scatter", cold, warm, SCATTER_GOAL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("fixture", "scatter"))
    parser.add_argument("--image", default="wheelwright/build-cpu:py3.11")
    args = parser.parse_args()
    if shutil.which("docker") is None:
        raise SystemExit("needs the Docker engine")
    results = []
    if args.only in (None, "fixture"):
        results.append(fixture(args.image))
    if args.only in (None, "scatter"):
        results.append(scatter(args.image))
    for result in results:
        verdict = "met" if result["build_stage_ratio"] <= result["goal"] else "NOT met"
        print(
            f"{result['bench']}: build stage {result['cold']['stages']['build']:.1f}s cold,"
            f" {result['warm']['stages']['build']:.1f}s warm: ratio"
            f" {result['build_stage_ratio']} (goal <= {result['goal']}: {verdict});"
            f" bringing and saving the cache {result['cache_bring_and_save_s']}s"
            f" against {result['build_s_saved']}s of build saved"
        )


if __name__ == "__main__":
    main()
