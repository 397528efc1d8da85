"""Job state in this process's memory: for `wheelwright serve` with no broker."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from service.errors import BuildNotFoundError
from service.jobs import transitions
from service.models import BuildRecord, BuildState, StageTiming
from service.shares import over_quota, share_of


class MemoryJobs:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._records: dict[str, BuildRecord] = {}
        self._live_keys: dict[str, str] = {}
        self._logs: dict[str, list[str]] = defaultdict(list)
        self._log_expiry: dict[str, float] = {}
        self._cancel: set[str] = set()
        self._counters: dict[str, float] = defaultdict(float)
        self._seen: dict[str, float] = {}
        self._held: dict[str, set[str]] = defaultdict(set)  # counted builds by share key

    def create(self, record: BuildRecord, *, limit: int | None = None) -> tuple[BuildRecord, bool]:
        with self._lock:
            live = self._live_keys.get(record.request_key)
            if live is not None and transitions.stale(self._records[live]):
                self._update(live, transitions.lost(self._records[live]))
            elif live is not None and not self._records[live].terminal:
                return self._records[live], False
            if limit is not None:
                self._admit(record, limit)
            self._records[record.id] = record
            self._live_keys[record.request_key] = record.id
            return record, True

    def _admit(self, record: BuildRecord, limit: int) -> None:
        who = share_of(record.requested_by)
        held = self._held[who.key]
        for build_id in list(held):
            if transitions.stale(self._records[build_id]):
                self._update(build_id, transitions.lost(self._records[build_id]))
        if len(held) >= limit:
            raise over_quota(who, len(held), limit)
        held.add(record.id)

    def get(self, build_id: str) -> BuildRecord:
        with self._lock:
            try:
                return self._records[build_id]
            except KeyError:
                raise BuildNotFoundError(f"no build {build_id!r}") from None

    def find(
        self,
        *,
        state: BuildState | None = None,
        project: str | None = None,
        environment: str | None = None,
        limit: int = 100,
        before: float | None = None,
    ) -> list[BuildRecord]:
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.created_at, reverse=True)
        return [
            r
            for r in records
            if (before is None or r.created_at < before)
            and transitions.matches(r, state, project, environment)
        ][:limit]

    def _update(self, build_id: str, record: BuildRecord) -> BuildRecord:
        self._records[build_id] = record
        if record.terminal and self._live_keys.get(record.request_key) == build_id:
            del self._live_keys[record.request_key]
        if record.terminal:
            self._held[share_of(record.requested_by).key].discard(build_id)
        self._lock.notify_all()
        return record

    def start(self, build_id: str) -> BuildRecord:
        with self._lock:
            return self._update(build_id, transitions.started(self.get(build_id)))

    def record_stage(self, build_id: str, timing: StageTiming) -> None:
        with self._lock:
            self._update(build_id, transitions.with_stage(self.get(build_id), timing))

    def heartbeat(self, build_id: str) -> None:
        with self._lock:
            self._update(build_id, transitions.beat(self.get(build_id)))

    def finish(
        self,
        build_id: str,
        state: BuildState,
        *,
        artifact: dict[str, object] | None = None,
        error: str | None = None,
        error_stage: str | None = None,
    ) -> BuildRecord:
        with self._lock:
            record = transitions.finished(
                self.get(build_id), state, artifact=artifact, error=error, error_stage=error_stage
            )
            return self._update(build_id, record)

    def expire_log(self, build_id: str, after_s: int) -> None:
        with self._lock:
            self._log_expiry[build_id] = time.monotonic() + after_s
            self._drop_expired()

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for build_id in [b for b, at in self._log_expiry.items() if at <= now]:
            self._logs.pop(build_id, None)
            del self._log_expiry[build_id]

    def append_log(self, build_id: str, line: str) -> None:
        with self._lock:
            self._drop_expired()
            self._logs[build_id].append(line)
            self._lock.notify_all()

    def read_log(
        self, build_id: str, cursor: str = "0", block_ms: int = 0
    ) -> tuple[list[str], str]:
        start = int(cursor)
        with self._lock:
            self._drop_expired()
            if len(self._logs[build_id]) <= start and block_ms > 0:
                self._lock.wait(block_ms / 1000)
            lines = self._logs[build_id][start:]
        return lines, str(start + len(lines))

    def log_tail(self, build_id: str, count: int) -> tuple[list[str], str]:
        with self._lock:
            self._drop_expired()
            lines = self._logs.get(build_id, [])
            return lines[-count:] if count > 0 else [], str(len(lines))

    def cancel(self, build_id: str) -> BuildRecord:
        with self._lock:
            record = transitions.cancel_requested(self.get(build_id))
            self._cancel.add(build_id)
            return self._update(build_id, record)

    def cancelled(self, build_id: str) -> bool:
        with self._lock:
            return build_id in self._cancel

    def count(self, name: str, amount: float = 1.0) -> None:
        with self._lock:
            self._counters[name] += amount

    def counters(self) -> dict[str, float]:
        with self._lock:
            return dict(self._counters)

    def first_time(self, token: str, ttl_s: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._seen.get(token, 0.0) > now:
                return False
            self._seen[token] = now + ttl_s
            return True

    def ping(self) -> None:
        return None
