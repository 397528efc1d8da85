"""Live build state: records, single-flight, logs, cancel flags and shared counters."""

from __future__ import annotations

from service.config import Settings
from service.jobs.base import JobBackend
from service.jobs.memory import MemoryJobs
from service.jobs.redis import RedisJobs


def open_jobs(settings: Settings) -> JobBackend:
    """Redis when a broker is configured, else this process's memory."""
    if settings.broker_url:
        return RedisJobs.from_url(settings.broker_url)
    return MemoryJobs()


__all__ = ["JobBackend", "MemoryJobs", "RedisJobs", "open_jobs"]
