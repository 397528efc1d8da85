"""A build from a home that does not exist yet, in real containers (real dockerd, a local
store, the in-process job state `wheelwright serve` uses). The runner's rules (a crash, retries,
cancel, redelivery) need no container and are checked in tests/unit/test_runner.py."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest
from enginekit import make_sdist, managed_containers

from service.config import load_settings
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
