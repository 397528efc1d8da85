"""Live build state: records, single-flight, logs, cancel flags and shared counters."""

from __future__ import annotations

from service.config import Settings
from service.jobs import transitions
from service.jobs.base import JobBackend
from service.jobs.memory import MemoryJobs
from service.jobs.redis import RedisJobs
from service.models import BuildRecord


def settled(jobs: JobBackend, build_id: str, redelivery_s: float) -> BuildRecord:
    """The build, failed first if it runs nowhere: no heartbeat for longer than the queue
    takes to redeliver a lost worker's build (`redelivery_s`) plus `STALE_S`. What a reader
    sees is never a build left running for good by a lost worker or broker."""
    record = jobs.get(build_id)
    if transitions.stale(record, after_s=redelivery_s + transitions.STALE_S):
        error = f"lost: no worker gave a sign of life for {int(redelivery_s)} s and more"
        return jobs.finish(build_id, "failed", error=error)
    return record


def open_jobs(settings: Settings) -> JobBackend:
    """Redis when a broker is configured, else this process's memory."""
    if settings.broker_url:
        return RedisJobs.from_url(settings.broker_url)
    return MemoryJobs()


__all__ = ["JobBackend", "MemoryJobs", "RedisJobs", "open_jobs", "settled"]
