"""Fixtures every tier shares: a real Docker engine and the real build images.

Nothing here skips: a missing engine fails the tests, with the command that starts one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from tests.postgres_server import PostgresServer
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
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL cluster of the session's own (Debian's `postgresql`)."""
    server = PostgresServer()
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"{exc} (scripts/host-services.sh installs postgresql)", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh catalog database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'catalog.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


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
