"""Live build state: records, single-flight, logs, cancel flags and shared counters."""

from __future__ import annotations

from service.config import Settings
from service.jobs import transitions
from service.jobs.base import JobBackend
from service.jobs.memory import MemoryJobs
from service.jobs.redis import RedisJobs
from service.models import BuildRecord


def settled(jobs: JobBackend, build_id: str) -> BuildRecord:
    """The build, failed first if it is running nowhere (its worker stopped beating): what a
    reader sees is never a build left running by a lost worker or broker."""
    record = jobs.get(build_id)
    if transitions.stale(record):
        return jobs.finish(build_id, "failed", error=transitions.lost(record).error)
    return record


def open_jobs(settings: Settings) -> JobBackend:
    """Redis when a broker is configured, else this process's memory."""
    if settings.broker_url:
        return RedisJobs.from_url(settings.broker_url)
    return MemoryJobs()


__all__ = ["JobBackend", "MemoryJobs", "RedisJobs", "open_jobs", "settled"]
