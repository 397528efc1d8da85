"""The service end to end: real Redis, real Celery worker processes, real dockerd, real uv."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import httpx
import pytest
import redis
import uv
from enginekit import FIXTURES, make_sdist, managed_containers
from redis_server import RedisServer
from servicekit import Service, running_stage, sleepy_sdist

from service.index import JSON_V1

pytestmark = [pytest.mark.docker, pytest.mark.redis]


@pytest.fixture
def service(
    tmp_path: Path, redis_url: str, cpu_image: str, docker_client: docker.DockerClient
) -> Iterator[Service]:
    svc = Service(home=tmp_path / "home", redis_url=redis_url)
    svc.start_api()
    yield svc
    svc.stop()
    assert managed_containers(docker_client, svc.home) == [], "a build container was left behind"


def test_submit_build_follow_log_and_install_with_uv(service: Service, tmp_path: Path) -> None:
    service.start_worker("cpu")
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "wheelwright"),
            "submit",
            str(FIXTURES / "numpy-ext"),
            "--server",
            service.url,
            "--runtime",
            "numpy",
            "--wait",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "===> [build] start (network off)" in done.stderr  # the log, followed live
    assert "built npext-1.0.0-cp311-cp311-linux_x86_64.whl" in done.stderr
    index_url = done.stdout.strip().splitlines()[-1]
    assert index_url.startswith(f"{service.url}/simple/cpu-py311-numpy-")

    venv = tmp_path / "venv"
    env = {**os.environ, "UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    uv_bin = uv.find_uv_bin()
    subprocess.run([uv_bin, "venv", "-q", str(venv)], check=True, env=env)
    subprocess.run(
        [
            uv_bin,
            "pip",
            "install",
            "-q",
            "--python",
            str(venv / "bin" / "python"),
            "--index-url",
            index_url,
            "--extra-index-url",
            "https://pypi.org/simple",
            "--no-build",
            "npext",
        ],
        check=True,
        env=env,
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import npext; print(npext.total([2.0, 3.5]))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "5.5"

    builds = httpx.get(f"{service.url}/v1/builds", params={"state": "succeeded"}).json()
    assert [b["build"]["project"] for b in builds] == ["npext"]
    assert builds[0]["build"]["requested_by"]["via"] == "cli"  # the CLI says who it is
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'wheelwright_cache_requests_total{result="miss"} 1.0' in metrics
    assert 'wheelwright_stage_duration_seconds_count{stage="build"} 1.0' in metrics


def test_fifty_identical_requests_share_one_build(service: Service, tmp_path: Path) -> None:
    sdist = make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0")
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: service.upload(sdist), range(50)))
    ids = {a["build"]["build"]["id"] for a in answers}
    assert len(ids) == 1
    assert sum(not a["joined"] for a in answers) == 1
    build_id = ids.pop()
    service.start_worker("cpu")
    build = service.wait_for(build_id, lambda b: b["state"] == "succeeded")
    assert build["attempts"] == 1
    all_builds = httpx.get(f"{service.url}/v1/builds").json()
    assert [b["build"]["id"] for b in all_builds] == [build_id]
    again = service.upload(sdist)
    assert again["cached"] is True
    assert again["artifact"]["sha256"] == build["artifact"]["sha256"]


def test_worker_killed_mid_build_is_redelivered_once(
    tmp_path: Path, redis_url: str, cpu_image: str, docker_client: docker.DockerClient
) -> None:
    svc = Service(home=tmp_path / "home", redis_url=redis_url, build_timeout_s=25)
    svc.start_api()
    try:
        first = svc.start_worker("cpu")
        answer = svc.upload(sleepy_sdist(tmp_path, 6, "1.0"), timeout_s=25)
        build_id = answer["build"]["build"]["id"]
        svc.wait_for(build_id, lambda b: running_stage(b, "build"), what="build stage")
        svc.kill_worker(first)
        assert managed_containers(docker_client, svc.home), "the lost build's container runs on"
        svc.start_worker("cpu")
        build = svc.wait_for(build_id, lambda b: b["state"] == "succeeded", timeout_s=240)
        assert build["attempts"] == 2
        log = httpx.get(f"{svc.url}/v1/builds/{build_id}/log").text
        assert "--- delivery 2: clearing the lost attempt" in log
        manifests = list((svc.home / "store" / "builds").rglob("*.json"))
        assert len(manifests) == 1
        assert managed_containers(docker_client, svc.home) == []
    finally:
        svc.stop()


def test_redis_restart_loses_nothing_queued(
    service: Service, redis_server: RedisServer, tmp_path: Path
) -> None:
    ids = [
        service.upload(make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0"))["build"],
        service.upload(sleepy_sdist(tmp_path, 0, "2.0"))["build"],
    ]
    redis_server.restart()
    service.start_worker("cpu")
    for queued in ids:
        build = service.wait_for(queued["build"]["id"], lambda b: b["state"] == "succeeded")
        assert build["attempts"] == 1


def test_cancel_queued_and_running(
    service: Service, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    queued = service.upload(sleepy_sdist(tmp_path / "q", 0, "3.0"))["build"]["build"]["id"]
    cancelled = httpx.post(f"{service.url}/v1/builds/{queued}/cancel").json()
    assert cancelled["build"]["state"] == "cancelled"

    service.start_worker("cpu")
    running = service.upload(sleepy_sdist(tmp_path / "r", 600, "4.0"))["build"]["build"]["id"]
    service.wait_for(running, lambda b: running_stage(b, "build"), what="build stage")
    assert managed_containers(docker_client, service.home)
    response = httpx.post(f"{service.url}/v1/builds/{running}/cancel")
    assert response.status_code == 202
    build = service.wait_for(running, lambda b: b["state"] == "cancelled", timeout_s=30)
    assert build["error"].endswith("was cancelled during build")
    assert managed_containers(docker_client, service.home) == []
    assert service.build(queued)["attempts"] == 0  # the worker never started it
    again = httpx.post(f"{service.url}/v1/builds/{running}/cancel")
    assert again.status_code == 409


def test_redis_flushed_mid_service_keeps_the_index(
    service: Service, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The worker's publish wrote the catalog row (another process, one SQLite file in WAL
    mode); Redis holds none of it, and a restarted API lists it without reading a manifest."""
    service.start_worker("cpu")
    queued = service.upload(make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0"))["build"]
    built = service.wait_for(queued["build"]["id"], lambda b: b["state"] == "succeeded")
    page_url = f"{service.url}/simple/{built['environment']}/modern-ext/"
    before = httpx.get(page_url, headers={"Accept": JSON_V1}, timeout=10)
    assert [f["filename"] for f in before.json()["files"]] == [built["artifact"]["filename"]]
    redis.Redis.from_url(service.redis_url).flushall()
    after = httpx.get(page_url, headers={"Accept": JSON_V1}, timeout=10)
    assert (after.status_code, after.content) == (200, before.content)
    assert httpx.get(f"{service.url}/readyz", timeout=10).status_code == 200
    builds = service.home / "store" / "builds"
    builds.rename(builds.with_name("builds-aside"))  # a cold start that read manifests: nothing
    service.stop()
    service.start_api()
    cold = httpx.get(page_url, headers={"Accept": JSON_V1, "If-None-Match": before.headers["etag"]})
    assert cold.status_code == 304
