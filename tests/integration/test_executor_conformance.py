"""The executor conformance checks (tests/executor_conformance.py) for the real executors, docker
and host, building the fixture projects; the fake executor passes the same checks in tests/unit."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from enginekit import managed_containers

from service.config import Settings, load_settings
from service.models import BuildRequest
from tests.buildkit import Builder, leftover_workspaces, make_sdist, request_for
from tests.executor_conformance import ExecutorConformance
from worker.executors import make_executor

pytestmark = pytest.mark.docker


@dataclass
class FixtureProjects:
    """The conformance scenarios as real projects, built for real."""

    folder: Path
    deadline_bound_s: float = 50

    def compiled(self) -> BuildRequest:
        return request_for(make_sdist("modern-ext", self.folder, "modern_ext", "2.0.0"))

    def failing_backend(self) -> BuildRequest:
        return request_for(make_sdist("raising-backend", self.folder, "raising_backend", "0.1.0"))

    def slow(self) -> BuildRequest:
        sdist = make_sdist("slow-build", self.folder, "slow_build", "0.1.0")
        return request_for(sdist, timeout_s=30)


class TestRealExecutors(ExecutorConformance):
    @pytest.fixture(params=["docker", "host"])
    def settings(
        self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Settings:
        home = tmp_path_factory.mktemp(f"conformance-{request.param}")
        if request.param == "docker":
            request.getfixturevalue("cpu_image")
        return load_settings(home=home, executor=request.param)

    @pytest.fixture
    def builder(self, settings: Settings, docker_client: docker.DockerClient) -> Iterator[Builder]:
        executor = make_executor(settings)
        assert executor.name == settings.executor
        yield Builder(settings, executor)
        assert managed_containers(docker_client, settings.home) == []
        assert leftover_workspaces(settings) == []
        assert list(settings.work_dir.glob("*/io/*.pgid")) == []

    @pytest.fixture
    def scenario(self, tmp_path: Path) -> FixtureProjects:
        return FixtureProjects(tmp_path)


def test_host_reaper_kills_a_group_past_its_deadline(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, executor="host")
    marker = settings.work_dir / "dead-build" / "io" / "build.pgid"
    marker.parent.mkdir(parents=True)
    sleeper = os.posix_spawn("/bin/sleep", ["sleep", "300"], os.environ, setsid=True)
    marker.write_text(f"{sleeper} {int(time.time()) - 1}\n")
    assert make_executor(settings).reap() == 1
    _, status = os.waitpid(sleeper, 0)
    assert os.WIFSIGNALED(status)
    assert not marker.exists()
