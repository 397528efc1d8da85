"""Fixtures for the integration tier: a real Docker engine and the real build images.

Nothing here skips: a missing engine fails the tests, with the command that starts one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import docker
import docker.errors
import pytest
import redis
from redis_server import RedisServer
from s3_server import free_port

from worker.images import ensure_image, image_tag

_log = logging.getLogger("wheelwright.tests.images")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(
            f"the Docker engine is unreachable ({exc}); start it with scripts/host-services.sh",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def cpu_image(docker_client: docker.DockerClient) -> str:
    """The CPU build image for Python 3.11, built when missing (from the debootstrap base here)."""
    ensure_image(docker_client, "cpu", "3.11", progress=_log.info)
    return image_tag("cpu", "3.11")


@pytest.fixture(scope="session")
def cuda_image(docker_client: docker.DockerClient) -> str:
    """The CUDA 13.0 build image for Python 3.11 (nvcc from PyPI wheels), built when missing."""
    ensure_image(docker_client, "cuda", "3.11", "13.0", progress=_log.info)
    return image_tag("cuda", "3.11", "13.0")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server (append-only, so a restart keeps what was queued)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean database on the shared server."""
    if redis_server.process is None:
        redis_server.start()
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url
