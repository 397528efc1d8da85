"""Fixtures for the integration tier: a real Redis (the Docker fixtures are in tests/conftest.py).

Nothing here skips: a missing redis-server fails the tests, with the command that installs it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_server import RedisServer
from s3_server import free_port

_log = logging.getLogger("wheelwright.tests.images")


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


@pytest.fixture(scope="session")
def cuda_torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Wheelwright home for the builds against PyPI's CUDA torch (about 3 GB with its
    nvidia wheels): its package cache downloads them once for the session."""
    return tmp_path_factory.mktemp("cuda-torch-home")
