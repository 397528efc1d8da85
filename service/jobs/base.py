"""The job state swap point: where live build state, logs and cancel flags are kept.

`RedisJobs` is the service's (shared by API replicas and workers); `MemoryJobs` serves the
one-process `wheelwright serve` with no broker. Both pass one conformance test.
"""

from __future__ import annotations

from typing import Protocol

from service.models import BuildRecord, BuildState, StageTiming


class JobBackend(Protocol):
    def create(self, record: BuildRecord, *, limit: int | None = None) -> tuple[BuildRecord, bool]:
        """Single-flight: store `record`, unless a live build has its request key.

        Returns the build that runs the request, and whether it is the new one. With `limit`,
        a new build counts against its requester's share (`service.shares.share_of`) until it
        ends, and is refused (`BusyError`, nothing stored) when that requester has `limit`
        builds counted so and not ended already; joining a live build is never refused.
        """
        ...

    def get(self, build_id: str) -> BuildRecord:
        """The build, or `BuildNotFoundError`."""
        ...

    def find(
        self,
        *,
        state: BuildState | None = None,
        project: str | None = None,
        environment: str | None = None,
        limit: int = 100,
        before: float | None = None,
    ) -> list[BuildRecord]:
        """Newest first; with `before`, only builds created before that time (the next page)."""
        ...

    def start(self, build_id: str) -> BuildRecord:
        """A delivery of the build begins: running, attempts + 1."""
        ...

    def record_stage(self, build_id: str, timing: StageTiming) -> None: ...

    def heartbeat(self, build_id: str) -> None:
        """The worker running the build is alive (a running build without one is stale)."""
        ...

    def finish(
        self,
        build_id: str,
        state: BuildState,
        *,
        artifact: dict[str, object] | None = None,
        error: str | None = None,
        error_stage: str | None = None,
    ) -> BuildRecord:
        """Terminal state; frees the request key for later requests."""
        ...

    def append_log(self, build_id: str, line: str) -> None: ...

    def read_log(
        self, build_id: str, cursor: str = "0", block_ms: int = 0
    ) -> tuple[list[str], str]:
        """Log lines after `cursor`, and the cursor to pass next (blocks up to `block_ms`)."""
        ...

    def log_tail(self, build_id: str, count: int) -> tuple[list[str], str]:
        """The last `count` log lines, and the cursor that reads on after them."""
        ...

    def expire_log(self, build_id: str, after_s: int) -> None:
        """Drop the live log `after_s` from now (0: at once): an ended build's log is in the
        store, and readers fall back to it once the stream is gone."""
        ...

    def cancel(self, build_id: str) -> BuildRecord:
        """Raise the cancel flag; a queued build is cancelled at once."""
        ...

    def cancelled(self, build_id: str) -> bool: ...

    def count(self, name: str, amount: float = 1.0) -> None:
        """Add to a named metric (cache hits, stage seconds); shared by all processes."""
        ...

    def counters(self) -> dict[str, float]: ...

    def first_time(self, token: str, ttl_s: int) -> bool:
        """True the first time `token` is seen within `ttl_s` (webhook replay refusal)."""
        ...

    def ping(self) -> None:
        """Raise `QueueUnavailableError` when the backend does not answer."""
        ...
