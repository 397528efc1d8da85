"""One conformance test for every Executor: same builds, same errors, nothing left behind."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from enginekit import Builder, leftover_workspaces, make_sdist, managed_containers, request_for

from service.config import Settings, load_settings
from service.errors import BuildFailedError, DeadlineExceededError
from worker.executors import make_executor

pytestmark = pytest.mark.docker


@pytest.fixture(params=["docker", "host"])
def settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp(f"conformance-{request.param}")
    if request.param == "docker":
        request.getfixturevalue("cpu_image")
    return load_settings(home=home, executor=request.param)


@pytest.fixture
def builder(settings: Settings, docker_client: docker.DockerClient) -> Iterator[Builder]:
    executor = make_executor(settings)
    assert executor.name == settings.executor
    yield Builder(settings, executor)
    assert managed_containers(docker_client, settings.home) == []
    assert leftover_workspaces(settings) == []
    assert list(settings.work_dir.glob("*/io/*.pgid")) == []


def test_builds_a_compiled_extension(builder: Builder, tmp_path: Path) -> None:
    sdist = make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0")
    built = builder.build(request_for(sdist))
    assert built.wheel.name.startswith("modern_ext-2.0.0-cp311-cp311-")
    assert built.manifest["image"]["executor"] == builder.settings.executor
    assert built.manifest["verify"]["imported"] == ["modern_ext"]
    assert [s["name"] for s in built.manifest["stages"]][1:7] == [
        "runtime",
        "build_deps",
        "requires",
        "requires_install",
        "build",
        "verify",
    ]
    assert {s["name"]: s["network"] for s in built.manifest["stages"]}["requires"] is False
    assert built.manifest["isolation"]["requires_network"] is False


def test_a_failing_backend_names_its_stage(builder: Builder, tmp_path: Path) -> None:
    sdist = make_sdist("raising-backend", tmp_path, "raising_backend", "0.1.0")
    with pytest.raises(BuildFailedError) as info:
        builder.build(request_for(sdist))
    assert info.value.stage == "build"
    assert "boom" in info.value.log_tail


def test_the_deadline_kills_the_stage(builder: Builder, tmp_path: Path) -> None:
    sdist = make_sdist("slow-build", tmp_path, "slow_build", "0.1.0")
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        builder.build(request_for(sdist, timeout_s=30))
    assert time.monotonic() - started < 50
    sleepers = [p for p in Path("/proc").glob("[0-9]*") if _cmdline(p).endswith("bdist_wheel")]
    assert sleepers == [], "a build process outlived its deadline"


def test_reap_finds_nothing_after_clean_builds(builder: Builder) -> None:
    assert builder.executor.reap() == 0


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


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
