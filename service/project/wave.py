"""The builds of the nodes ready together sent as one group: `submit` queues each build through
this dispatcher, which holds them until all are submitted, then hands them to the real one at once
(a Celery `group` there; the in-process pool runs as many as it has workers)."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from service.dispatch import Dispatcher
from service.jobs import JobBackend
from service.models import BuildRecord

log = structlog.get_logger("wheelwright.project")


class WaveDispatcher:
    def __init__(self, inner: Dispatcher, jobs: JobBackend) -> None:
        self._inner = inner
        self._jobs = jobs
        self._held: list[BuildRecord] = []

    def submit(self, record: BuildRecord) -> None:
        self._held.append(record)

    def submit_group(self, records: Sequence[BuildRecord]) -> None:
        self._held.extend(records)

    def queue_length(self, queue: str) -> int | None:
        return self._inner.queue_length(queue)

    def flush(self) -> None:
        """Send the held builds as one group; a build that cannot be queued ends failed (so no
        build is left waiting for a worker that will never come)."""
        held, self._held = self._held, []
        if not held:
            return
        try:
            self._inner.submit_group(held)
        except Exception as exc:  # the broker is away: each build ends, with the reason
            log.warning("project.wave_not_queued", builds=len(held), error=str(exc))
            for record in held:
                self._jobs.finish(record.id, "failed", error=f"could not be queued: {exc}")
