"""Job state in Redis, shared by every API replica and worker.

ww:build:<id>     the BuildRecord as JSON (read-modify-write inside WATCH transactions)
ww:key:<key>      the id of the live build of a request key (single-flight, SET NX)
ww:builds         sorted set of ids by creation time (listing)
ww:log:<id>       a Redis stream of log lines (follow mode reads it with XREAD BLOCK)
ww:cancel:<id>    the cancel flag a running build polls
ww:metrics        a hash of counters shared by all processes
ww:held:<share>   the ids of a requester's counted builds not ended yet (its quota)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
import redis.exceptions

from service.errors import BuildNotFoundError, QueueUnavailableError
from service.jobs import transitions
from service.models import BuildRecord, BuildState, StageTiming
from service.shares import over_quota, share_of

PREFIX = "ww:"
LOG_MAXLEN = 200_000
FLAG_TTL_S = 7 * 24 * 3600
LIST_SCAN = 2000


def _held_key(record: BuildRecord) -> str:
    return f"{PREFIX}held:{share_of(record.requested_by).key}"


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise QueueUnavailableError(f"Redis does not answer: {exc}") from None


class RedisJobs:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    @classmethod
    def from_url(cls, url: str) -> RedisJobs:
        return cls(redis.Redis.from_url(url, decode_responses=True, health_check_interval=30))

    def _load(self, pipe: Any, build_id: str) -> BuildRecord:
        raw = pipe.get(f"{PREFIX}build:{build_id}")
        if raw is None:
            raise BuildNotFoundError(f"no build {build_id!r}")
        return BuildRecord.model_validate_json(raw)

    def _change(self, build_id: str, change: Callable[[BuildRecord], BuildRecord]) -> BuildRecord:
        """Apply `change` atomically; a terminal record frees its request key if it holds it."""
        key = f"{PREFIX}build:{build_id}"
        result: list[BuildRecord] = []

        def apply(pipe: Any) -> None:
            record = change(self._load(pipe, build_id))
            flight = f"{PREFIX}key:{record.request_key}"
            pipe.watch(flight)
            holder = pipe.get(flight)
            pipe.multi()
            pipe.set(key, record.model_dump_json())
            if record.terminal and holder == record.id:
                pipe.delete(flight)
            if record.terminal:
                pipe.srem(_held_key(record), record.id)
            result[:] = [record]

        with _reachable():
            self.r.transaction(apply, key)
        return result[0]

    def create(self, record: BuildRecord, *, limit: int | None = None) -> tuple[BuildRecord, bool]:
        key = f"{PREFIX}key:{record.request_key}"
        own = f"{PREFIX}build:{record.id}"
        held = _held_key(record)
        with _reachable():
            # The record exists before the key points at it: a key whose record is missing
            # is stale, never a build being created.
            self.r.set(own, record.model_dump_json())
            counted = limit is None  # counted only once no live build is there to join
            for _ in range(10):
                live = self.r.get(key)
                if not live and not counted:
                    self._admit(record, held, limit or 0)
                    counted = True
                if not live and self.r.set(key, record.id, nx=True):
                    self.r.zadd(f"{PREFIX}builds", {record.id: record.created_at})
                    return record, True
                live = live or self.r.get(key)
                if live:
                    try:
                        existing: BuildRecord | None = self.get(str(live))
                    except BuildNotFoundError:
                        existing = None
                    if existing is not None and transitions.stale(existing):
                        self._change(existing.id, transitions.lost)
                    elif existing is not None and not existing.terminal:
                        self.r.srem(held, record.id)
                        self.r.delete(own)
                        return existing, False
                    self._delete_if(key, str(live))  # stale: its build ended or vanished
            self.r.srem(held, record.id)
            self.r.delete(own)
        raise QueueUnavailableError("could not claim the request key (too much contention)")

    def _admit(self, record: BuildRecord, held: str, limit: int) -> None:
        """Count `record` in its requester's set, or refuse it (its record removed). Added
        first, counted after: of concurrent creates at the limit, none passes it."""
        self.r.sadd(held, record.id)
        if self.r.scard(held) <= limit:
            return
        for other in [str(i) for i in self.r.smembers(held)]:  # ended or lost ones leave
            if other == record.id:
                continue
            try:
                found = self.get(other)
            except BuildNotFoundError:
                self.r.srem(held, other)
                continue
            if found.terminal:
                self.r.srem(held, other)
            elif transitions.stale(found):
                self._change(other, transitions.lost)
        count = int(self.r.scard(held))
        if count <= limit:
            return
        self.r.srem(held, record.id)
        self.r.delete(f"{PREFIX}build:{record.id}")
        raise over_quota(share_of(record.requested_by), count - 1, limit)

    def _delete_if(self, key: str, value: str) -> None:
        with self.r.pipeline() as pipe:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                if pipe.get(key) == value:
                    pipe.multi()
                    pipe.delete(key)
                    pipe.execute()
            except redis.exceptions.WatchError:
                pass  # somebody else changed it: they own it now

    def get(self, build_id: str) -> BuildRecord:
        with _reachable():
            return self._load(self.r, build_id)

    def find(
        self,
        *,
        state: BuildState | None = None,
        project: str | None = None,
        environment: str | None = None,
        limit: int = 100,
        before: float | None = None,
    ) -> list[BuildRecord]:
        """Reads the newest ids in growing chunks until `limit` match (at most LIST_SCAN), so
        an unfiltered page costs one short read however many builds are kept."""
        top = f"({before!r}" if before is not None else "+inf"
        found: list[BuildRecord] = []
        scanned, chunk = 0, max(limit, 50)
        with _reachable():
            while len(found) < limit and scanned < LIST_SCAN:
                num = min(chunk, LIST_SCAN - scanned)
                ids = [
                    str(i)
                    for i in self.r.zrevrangebyscore(
                        f"{PREFIX}builds", top, "-inf", start=scanned, num=num
                    )
                ]
                if not ids:
                    break
                scanned += len(ids)
                chunk = min(chunk * 2, 500)
                raws = self.r.mget([f"{PREFIX}build:{i}" for i in ids])
                records = (BuildRecord.model_validate_json(raw) for raw in raws if raw)
                found += [r for r in records if transitions.matches(r, state, project, environment)]
        return found[:limit]

    def start(self, build_id: str) -> BuildRecord:
        return self._change(build_id, transitions.started)

    def record_stage(self, build_id: str, timing: StageTiming) -> None:
        self._change(build_id, lambda record: transitions.with_stage(record, timing))

    def finish(
        self,
        build_id: str,
        state: BuildState,
        *,
        artifact: dict[str, object] | None = None,
        error: str | None = None,
        error_stage: str | None = None,
    ) -> BuildRecord:
        return self._change(
            build_id,
            lambda record: transitions.finished(
                record, state, artifact=artifact, error=error, error_stage=error_stage
            ),
        )

    def expire_log(self, build_id: str, after_s: int) -> None:
        with _reachable():
            key = f"{PREFIX}log:{build_id}"
            if after_s > 0:
                self.r.expire(key, after_s)
            else:
                self.r.delete(key)

    def append_log(self, build_id: str, line: str) -> None:
        with _reachable():
            self.r.xadd(f"{PREFIX}log:{build_id}", {"l": line}, maxlen=LOG_MAXLEN, approximate=True)

    def read_log(
        self, build_id: str, cursor: str = "0", block_ms: int = 0
    ) -> tuple[list[str], str]:
        with _reachable():
            reply = self.r.xread(
                {f"{PREFIX}log:{build_id}": cursor}, count=5000, block=block_ms or None
            )
        lines: list[str] = []
        streams: list[Any] = list(reply or [])
        for _stream, entries in streams:
            for entry_id, fields in entries:
                lines.append(str(fields.get("l", "")))
                cursor = str(entry_id)
        return lines, cursor

    def log_tail(self, build_id: str, count: int) -> tuple[list[str], str]:
        with _reachable():
            entries: list[Any] = list(
                self.r.xrevrange(f"{PREFIX}log:{build_id}", count=count) or []
            )
        if not entries:
            return [], "0"
        entries.reverse()
        return [str(fields.get("l", "")) for _id, fields in entries], str(entries[-1][0])

    def heartbeat(self, build_id: str) -> None:
        self._change(build_id, transitions.beat)

    def cancel(self, build_id: str) -> BuildRecord:
        with _reachable():
            self.r.set(f"{PREFIX}cancel:{build_id}", "1", ex=FLAG_TTL_S)
        return self._change(build_id, transitions.cancel_requested)

    def cancelled(self, build_id: str) -> bool:
        with _reachable():
            return bool(self.r.exists(f"{PREFIX}cancel:{build_id}"))

    def count(self, name: str, amount: float = 1.0) -> None:
        with _reachable():
            self.r.hincrbyfloat(f"{PREFIX}metrics", name, amount)

    def counters(self) -> dict[str, float]:
        with _reachable():
            raw: dict[str, str] = self.r.hgetall(f"{PREFIX}metrics")  # type: ignore[assignment]
        return {str(k): float(v) for k, v in raw.items()}

    def first_time(self, token: str, ttl_s: int) -> bool:
        with _reachable():
            return bool(self.r.set(f"{PREFIX}seen:{token}", "1", nx=True, ex=ttl_s))

    def ping(self) -> None:
        with _reachable():
            self.r.ping()

    def queue_length(self, queue: str) -> int:
        with _reachable():
            return int(self.r.llen(queue))
