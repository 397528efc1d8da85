"""Executors: where build stages run. `docker` by default, `host` for nodes without Docker."""

from __future__ import annotations

from service.config import Settings
from worker.executors.base import ExecSession, Executor, StageContext


def make_executor(settings: Settings) -> Executor:
    """The executor the settings name (imported lazily: the host one needs no docker SDK)."""
    if settings.executor == "host":
        from worker.executors.host import HostExecutor

        return HostExecutor(settings)
    from worker.executors.docker import DockerExecutor

    return DockerExecutor(settings)


__all__ = ["ExecSession", "Executor", "StageContext", "make_executor"]
