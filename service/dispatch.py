"""Getting a queued build to a worker: Celery on Redis, or a thread in this process.

The service enqueues by task name and never imports the worker package, so the API image stays
small; the task name, queues and Celery settings live in `service.queues`, which the worker's
Celery app imports too.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import structlog
from celery import Celery, group

from service.config import Settings
from service.errors import QueueUnavailableError
from service.models import BuildRecord
from service.queues import TASK_NAME, celery_config

log = structlog.get_logger("wheelwright.dispatch")


class Dispatcher(Protocol):
    """What gets queued builds to workers. Every dispatcher passes the same conformance test
    (`tests/unit/test_dispatch_conformance.py`): each build handed over once, alone or in a
    group, or an error and nothing handed over."""

    def submit(self, record: BuildRecord) -> None: ...

    def submit_group(self, records: Sequence[BuildRecord]) -> None:
        """Builds that may all run at once (the ready nodes of a project build), sent
        together: Celery as one `group`, the in-process pool as many at once as it has."""
        ...

    def queue_length(self, queue: str) -> int | None:
        """Builds waiting in `queue`, where the dispatcher can tell."""
        ...


class CeleryDispatcher:
    def __init__(self, settings: Settings, queue_length: Callable[[str], int]) -> None:
        self.app = Celery("wheelwright", set_as_current=False)
        self.app.conf.update(celery_config(settings))
        self._queue_length = queue_length

    def submit(self, record: BuildRecord) -> None:
        self.app.send_task(TASK_NAME, args=[record.id], queue=record.queue)

    def submit_group(self, records: Sequence[BuildRecord]) -> None:
        """One Celery `group`: each build on its own target's queue, all at once."""
        if records:
            group(
                self.app.signature(TASK_NAME, args=[r.id], queue=r.queue) for r in records
            ).apply_async()

    def queue_length(self, queue: str) -> int | None:
        return self._queue_length(queue)


class NoDispatcher:
    """No broker and no in-process runner: the API can serve the index but not build."""

    def submit(self, record: BuildRecord) -> None:
        raise QueueUnavailableError(
            "this service has no workers: set WHEELWRIGHT_BROKER_URL, or run `wheelwright serve`"
        )

    def submit_group(self, records: Sequence[BuildRecord]) -> None:
        for record in records:
            self.submit(record)

    def queue_length(self, queue: str) -> int | None:
        return None


class InProcessDispatcher:
    """Builds in background threads, `workers` at a time (`wheelwright serve` with no broker
    runs one; `wheelwright project build --workers N` runs a wave's builds side by side)."""

    def __init__(
        self,
        run: Callable[[str], object],
        on_crash: Callable[[str, Exception], object] | None = None,
        *,
        workers: int = 1,
    ) -> None:
        self._run = run
        self._on_crash = on_crash
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="build")
        self._waiting: Counter[str] = Counter()
        self._lock = threading.Lock()

    def submit(self, record: BuildRecord) -> None:
        with self._lock:
            self._waiting[record.queue] += 1
        self._pool.submit(self._call, record.id, record.queue)

    def submit_group(self, records: Sequence[BuildRecord]) -> None:
        for record in records:  # the pool runs as many at once as it has workers
            self.submit(record)

    def _call(self, build_id: str, queue: str) -> None:
        with self._lock:
            self._waiting[queue] -= 1
        try:
            self._run(build_id)
        except Exception as exc:  # the runner ends its builds; this is what it could not end
            log.exception("build.runner_crashed", build_id=build_id, error=type(exc).__name__)
            if self._on_crash is not None:
                self._on_crash(build_id, exc)

    def queue_length(self, queue: str) -> int | None:
        with self._lock:
            return self._waiting[queue]

    def shutdown(self) -> None:
        """Wait for the builds already handed over, then stop the threads."""
        self._pool.shutdown(wait=True)
