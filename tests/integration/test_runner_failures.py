"""No stuck builds: whatever goes wrong in the runner, the build ends, with its cause (real
dockerd, a local store, the in-process job state `wheelwright serve` uses)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import pytest
from enginekit import make_sdist, managed_containers

from service.config import load_settings
from service.dispatch import InProcessDispatcher
from service.jobs import MemoryJobs
from service.keys import new_build_id
from service.layout import upload_key
from service.models import BuildRecord, parse_request
from service.prepare import prepare
from service.sources import file_sha256
from service.store import LocalStore
from worker.executors.docker import DockerExecutor
from worker.runner import Services, run_job

pytestmark = pytest.mark.docker


def _uploaded(store: LocalStore, sdist: Path) -> BuildRecord:
    """The record `submit` would queue for an uploaded sdist (prepared as the API does)."""
    sha = file_sha256(sdist)
    key = upload_key(sha, sdist.name)
    store.put(key, sdist.read_bytes())
    source = {"kind": "archive", "path": sdist.name, "sha256": sha, "store_key": key}
    prepared = prepare(parse_request({"source": source}), load_settings())
    return BuildRecord(
        id=new_build_id(),
        request=prepared.request,
        request_key=prepared.key,
        environment=prepared.environment,
        image=prepared.image,
        queue="cpu",
        created_at=time.time(),
    )


class BrokenContainers:
    """A Docker client whose container creation breaks with a plain bug (not our error)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        self.containers = self

    def create(self, *_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("simulated bug in the executor")

    def __getattr__(self, name: str) -> Any:
        if name in ("list",):
            return self._client.containers.list
        return getattr(self._client, name)


def test_a_home_that_does_not_exist_yet_builds(
    tmp_path: Path, cpu_image: str, docker_client: docker.DockerClient
) -> None:
    settings = load_settings(home=tmp_path / "not" / "yet")
    store = LocalStore(tmp_path / "store")
    jobs = MemoryJobs()
    record, _ = jobs.create(
        _uploaded(store, make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0"))
    )
    svc = Services(settings, store, jobs, DockerExecutor(settings))
    assert run_job(record.id, svc) == "succeeded"
    assert managed_containers(docker_client, settings.home) == []


def test_a_bug_in_the_runner_fails_the_build_with_its_cause(
    tmp_path: Path, cpu_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(home=tmp_path / "home")
    store = LocalStore(tmp_path / "store")
    jobs = MemoryJobs()
    record, _ = jobs.create(
        _uploaded(store, make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0"))
    )
    broken = BrokenContainers(docker.from_env())
    svc = Services(settings, store, jobs, DockerExecutor(settings, client_factory=lambda: broken))
    dispatcher = InProcessDispatcher(lambda build_id: run_job(build_id, svc))
    dispatcher.submit(record)
    deadline = time.monotonic() + 120
    while not jobs.get(record.id).terminal and time.monotonic() < deadline:
        time.sleep(0.2)
    ended = jobs.get(record.id)
    assert ended.state == "failed"
    assert "internal error (RuntimeError: simulated bug in the executor)" in (ended.error or "")
    logged = capsys.readouterr().out
    assert "build.crashed" in logged and "Traceback" in logged  # with its traceback
    (tmp_path / "b").mkdir()
    _again, created = jobs.create(
        _uploaded(store, make_sdist("modern-ext", tmp_path / "b", "modern_ext", "2.0.0"))
    )
    assert created, "a new request must not join the failed build"
