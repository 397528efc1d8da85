"""Fixtures for the fast tier: settings in a temp home, the fake executor, a local store and
the in-memory job backend. No Docker, no Redis, no S3 server."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Settings, load_settings
from service.jobs import MemoryJobs
from service.store import LocalStore
from tests.fakes import FakeExecutor


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


@pytest.fixture
def fake(settings: Settings) -> FakeExecutor:
    return FakeExecutor(settings)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def jobs() -> MemoryJobs:
    return MemoryJobs()
