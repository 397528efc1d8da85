"""The host executor: stages run as local processes in a throwaway venv in the workspace.

For machines with no Docker, such as many HPC GPU nodes: the build uses the host's Python of the
target version, its compilers and CUDA toolkit (CUDA_HOME), and can verify on its GPU. There is no
container boundary, so the plan's policies are advisory: installers run offline where the plan
says the network is off, stages that may not write the shared package cache are pointed at their
own (`UV_CACHE_DIR`, from the plan) though they could reach it, the runtime snapshot is not made
read-only, and the build runs as the worker's own user. Each stage is its own process group,
killed as a whole at the deadline, on cancel, or by the reaper if the worker died.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import uv

from service.config import Settings
from service.errors import ImageError
from service.models import BuildRequest
from service.prepare import build_image
from worker.executors.base import (
    StageContext,
    check_stop,
    read_stage_result,
    stage_environment,
    supervise,
    write_stage_request,
)
from worker.executors.bundle import driver_bundle
from worker.plan import Layout, Machine, StagePlan
from worker.proxy import PROXY_VARS

PASS_THROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "CUDA_HOME",
    "CUDA_PATH",
    "LD_LIBRARY_PATH",
    "CC",
    "CXX",
    "PIP_CERT",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    *PROXY_VARS,
)


def find_python(version: str) -> str:
    """The host interpreter of `version`: `pythonX.Y` on PATH, or this one if it matches."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found is None:
        raise ImageError(f"the host executor found no python{version} on PATH")
    return found


@dataclass
class HostSession:
    workspace: Path
    layout: Layout
    machine: Machine
    facts: Mapping[str, Any]

    def environment(self, stage: StagePlan[Any]) -> dict[str, str]:
        passed = {k: v for k, v in os.environ.items() if k in PASS_THROUGH}
        path = passed.get("PATH", "/usr/bin:/bin")
        cuda_home = passed.get("CUDA_HOME")
        if cuda_home:
            path = f"{cuda_home}/bin:{path}"
        return stage_environment(stage, self.layout, path=path, passed=passed)

    def run(self, stage: StagePlan[Any], ctx: StageContext) -> dict[str, Any]:
        write_stage_request(self.workspace / "io", stage)
        check_stop(stage, ctx)
        proc = subprocess.Popen(
            stage.argv(self.layout),
            cwd=self.workspace,
            env=self.environment(stage),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        marker = self.workspace / "io" / f"{stage.name}.pgid"
        marker.write_text(f"{proc.pid} {int(time.time() + ctx.remaining())}\n")
        assert proc.stdout is not None  # noqa: S101  (set by stdout=PIPE)
        kill = partial(_kill_group, proc.pid)
        try:
            code = supervise(
                stage,
                ctx,
                output=_chunks(proc.stdout),
                wait=partial(_wait, proc),
                kill=kill,
                what="process group",
                finish=kill,  # what the stage left running in the background goes too
            )
        finally:
            proc.stdout.close()
            proc.wait()
            marker.unlink(missing_ok=True)
        return read_stage_result(self.workspace / "io", stage, code, ctx)


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read1(65536):  # type: ignore[attr-defined]
        yield chunk


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class HostExecutor:
    """Builds with the host's own Python, compilers and CUDA, in a throwaway venv."""

    name = "host"
    compiler_cache = False  # builds can see a compiler cache at a fixed path

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @contextmanager
    def session(
        self,
        request: BuildRequest,
        workspace: Path,
        progress: Callable[[str], None],
        *,
        compiler_cache: Path | None = None,
    ) -> Iterator[HostSession]:
        # No compiler cache here: each build's workspace has its own path, and cache hits need
        # the same paths in every build.
        del compiler_cache
        self.reap()
        python = find_python(request.target.python)
        if request.target.kind == "cuda" and not os.environ.get("CUDA_HOME"):
            raise ImageError("a cuda target on the host executor needs CUDA_HOME set")
        progress(f"host executor: {python}")
        for sub in ("home", "tmp", "io", "out"):
            (workspace / sub).mkdir(parents=True, exist_ok=True)
        cache = self.settings.cache_dir / "host"
        cache.mkdir(parents=True, exist_ok=True)
        ca = self.settings.ca_bundle
        layout = Layout(
            work=str(workspace),
            driver=str(driver_bundle(self.settings.home / "driver")),
            python=python,
            uv=uv.find_uv_bin(),
            find_links=tuple(request.index.find_links),
            host_packages=self.settings.host.inherit_packages,
            # no container hides it from the other stages: they are pointed elsewhere
            shared_cache=str(cache),
            ca=str(ca) if ca is not None else None,
        )
        pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        yield HostSession(
            workspace=workspace,
            layout=layout,
            machine=Machine(cpus=os.cpu_count() or 1, memory_bytes=pages),
            facts={
                "executor": self.name,
                "image": build_image(request.target, self.settings, self.name),
                "image_id": python,
            },
        )

    def reap(self, build_id: str | None = None) -> int:
        """Kill stage process groups whose deadline passed (their worker died)."""
        removed = 0
        for marker in self.settings.work_dir.glob(f"{build_id or '*'}/io/*.pgid"):
            with suppress(OSError, ValueError):
                pid, deadline = (int(x) for x in marker.read_text().split())
                if build_id or deadline < time.time():
                    _kill_group(pid)
                    marker.unlink()
                    removed += 1
        return removed
