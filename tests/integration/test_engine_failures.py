"""Bad input: each fails with an error naming the stage and the cause, and leaves nothing behind.

Hostile archives, refused by fetch before any container starts, are checked in
tests/unit/test_fetch_hostile.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from enginekit import (
    Builder,
    leftover_workspaces,
    make_sdist,
    managed_containers,
    request_for,
)

from service.config import Settings, load_settings
from service.errors import (
    BuildFailedError,
    DeadlineExceededError,
    SourceNotFoundError,
)
from service.models import parse_request
from worker.executors.docker import DockerExecutor

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wwhome-failures")


def _builder(settings: Settings) -> Builder:
    return Builder(settings, DockerExecutor(settings))


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings(home=home)


@pytest.fixture
def builder(
    settings: Settings, cpu_image: str, docker_client: docker.DockerClient
) -> Iterator[Builder]:
    yield _builder(settings)
    assert managed_containers(docker_client, settings.home) == [], (
        "a build container was left behind"
    )
    assert leftover_workspaces(settings) == [], "a workspace was left behind"


def test_unknown_package(builder: Builder) -> None:
    request = parse_request(
        {"source": {"kind": "requirement", "requirement": "wheelwright-no-such-project-x1==1.0"}}
    )
    with pytest.raises(SourceNotFoundError, match="no project named") as info:
        builder.build(request)
    assert info.value.stage == "fetch"


def test_unknown_version_lists_what_exists(builder: Builder) -> None:
    request = parse_request({"source": {"kind": "requirement", "requirement": "six==0.0.1"}})
    with pytest.raises(SourceNotFoundError, match=r"no sdist of six 0\.0\.1 .*1\.16\.0") as info:
        builder.build(request)
    assert info.value.stage == "fetch"


def test_sdist_with_no_build_system(builder: Builder, tmp_path: Path) -> None:
    sdist = make_sdist("no-build-system", tmp_path, "nothing", "1.0")
    with pytest.raises(BuildFailedError, match="no build system") as info:
        builder.build(request_for(sdist))
    assert info.value.stage == "build_deps"
    assert info.value.kind == "build_system"  # the driver's kind, carried to the error


def test_backend_that_raises(builder: Builder, tmp_path: Path) -> None:
    sdist = make_sdist("raising-backend", tmp_path, "raising_backend", "0.1.0")
    with pytest.raises(BuildFailedError, match="the build backend failed") as info:
        builder.build(request_for(sdist))
    assert info.value.stage == "build"
    assert (type(info.value), info.value.kind) == (BuildFailedError, "backend")
    assert "boom: the backend refuses to build" in info.value.log_tail


def test_build_past_its_deadline_is_killed(
    builder: Builder, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    sdist = make_sdist("slow-build", tmp_path, "slow_build", "0.1.0")
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="hit its deadline") as info:
        builder.build(request_for(sdist, timeout_s=40))
    assert info.value.stage == "build"
    assert time.monotonic() - started < 60, "the container was not killed at the deadline"
    assert any("killing the build container" in line for line in builder.lines)
