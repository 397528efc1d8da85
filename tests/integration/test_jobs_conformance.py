"""One conformance test for every JobBackend: Redis (a real server) and memory."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.errors import BuildNotFoundError, BusyError, JobStateError
from service.jobs import JobBackend, MemoryJobs, RedisJobs, settled
from service.jobs.transitions import STALE_S
from service.keys import new_build_id
from service.models import BuildRecord, Requester, StageTiming, parse_request

pytestmark = pytest.mark.redis
REQUEST = parse_request({"source": {"kind": "requirement", "requirement": "six==1.16.0"}})


@pytest.fixture(params=["redis", "memory"])
def jobs(request: pytest.FixtureRequest) -> JobBackend:
    if request.param == "memory":
        return MemoryJobs()
    return RedisJobs.from_url(request.getfixturevalue("redis_url"))


def _record(key: str = "k1", **fields: object) -> BuildRecord:
    return BuildRecord(
        id=new_build_id(),
        request=REQUEST,
        request_key=key,
        environment="cpu-py311-x",
        queue="cpu",
        project="six",
        created_at=time.time(),
        **fields,  # type: ignore[arg-type]
    )


def test_create_get_and_find(jobs: JobBackend) -> None:
    first, created = jobs.create(_record("a"))
    assert created
    assert jobs.get(first.id) == first
    second, _ = jobs.create(_record("b"))
    assert [r.id for r in jobs.find()] == [second.id, first.id]
    assert [r.id for r in jobs.find(state="queued", project="six", limit=1)] == [second.id]
    assert jobs.find(environment="other") == []
    with pytest.raises(BuildNotFoundError, match="no build 'nope'"):
        jobs.get("nope")


def test_single_flight_under_concurrency(jobs: JobBackend) -> None:
    barrier = threading.Barrier(50)

    def attempt(_: int) -> tuple[str, bool]:
        barrier.wait()
        record, created = jobs.create(_record("same-key"))
        return record.id, created

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(attempt, range(50)))
    assert len({build_id for build_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_key_is_free_again_once_the_build_ends(jobs: JobBackend) -> None:
    first, _ = jobs.create(_record("k"))
    jobs.start(first.id)
    done = jobs.finish(first.id, "failed", error="boom", error_stage="build")
    assert (done.state, done.error_stage) == ("failed", "build")
    second, created = jobs.create(_record("k"))
    assert created and second.id != first.id
    late = jobs.finish(first.id, "succeeded")  # a late duplicate delivery changes nothing
    assert late.state == "failed"
    again, created = jobs.create(_record("k"))
    assert not created and again.id == second.id


def test_attempts_and_stages(jobs: JobBackend) -> None:
    record, _ = jobs.create(_record())
    assert jobs.start(record.id).attempts == 1
    assert jobs.start(record.id).attempts == 2
    jobs.record_stage(record.id, StageTiming(name="runtime", network=True))
    jobs.record_stage(record.id, StageTiming(name="runtime", seconds=1.5, network=True, ok=True))
    stages = jobs.get(record.id).stages
    assert [(s.name, s.seconds, s.ok) for s in stages] == [("runtime", 1.5, True)]


def test_cancel(jobs: JobBackend) -> None:
    queued, _ = jobs.create(_record("q"))
    assert jobs.cancel(queued.id).state == "cancelled"
    assert jobs.cancelled(queued.id)
    with pytest.raises(JobStateError, match="already cancelled"):
        jobs.cancel(queued.id)
    running, _ = jobs.create(_record("r"))
    jobs.start(running.id)
    assert jobs.cancel(running.id).state == "running"  # the build sees the flag and stops
    assert jobs.cancelled(running.id)
    assert not jobs.cancelled(_record().id)


def test_logs_follow_with_a_cursor(jobs: JobBackend) -> None:
    record, _ = jobs.create(_record())
    jobs.append_log(record.id, "one")
    jobs.append_log(record.id, "two")
    lines, cursor = jobs.read_log(record.id)
    assert lines == ["one", "two"]
    assert jobs.read_log(record.id, cursor) == ([], cursor)
    threading.Timer(0.2, jobs.append_log, args=(record.id, "three")).start()
    started = time.monotonic()
    lines, _ = jobs.read_log(record.id, cursor, block_ms=20_000)
    assert lines == ["three"]
    assert time.monotonic() - started < 15, "the read waited out its block instead of the line"


def test_a_log_tail_then_reading_on(jobs: JobBackend) -> None:
    record, _ = jobs.create(_record())
    assert jobs.log_tail(record.id, 10) == ([], jobs.log_tail(record.id, 10)[1])
    for n in range(50):
        jobs.append_log(record.id, f"line {n}")
    lines, cursor = jobs.log_tail(record.id, 3)
    assert lines == ["line 47", "line 48", "line 49"]
    assert jobs.read_log(record.id, cursor) == ([], cursor)
    jobs.append_log(record.id, "line 50")
    assert jobs.read_log(record.id, cursor)[0] == ["line 50"]


def test_an_expired_log_is_gone_and_a_lingering_one_still_reads(jobs: JobBackend) -> None:
    gone, _ = jobs.create(_record())
    kept, _ = jobs.create(_record("k2"))
    for record in (gone, kept):
        jobs.append_log(record.id, "the last line")
    jobs.expire_log(gone.id, 0)
    jobs.expire_log(kept.id, 3600)
    assert jobs.read_log(gone.id)[0] == []
    assert jobs.log_tail(gone.id, 5)[0] == []
    assert jobs.read_log(kept.id)[0] == ["the last line"]


def test_find_pages_back_in_time(jobs: JobBackend) -> None:
    now = time.time()
    made = [
        jobs.create(_record(f"p{n}").model_copy(update={"created_at": now + n}))[0]
        for n in range(120)
    ]
    newest = [r.id for r in reversed(made)]
    first = jobs.find(limit=50)
    assert [r.id for r in first] == newest[:50]
    second = jobs.find(limit=50, before=first[-1].created_at)
    assert [r.id for r in second] == newest[50:100]
    third = jobs.find(limit=50, before=second[-1].created_at)
    assert [r.id for r in third] == newest[100:]
    # a filter that few builds match still fills its page from further back
    for record in made[:5]:
        jobs.start(record.id)
    running = jobs.find(state="running", limit=10)
    assert [r.id for r in running] == [r.id for r in reversed(made[:5])]


def test_counters_add_up(jobs: JobBackend) -> None:
    jobs.count("cache_hit")
    jobs.count("cache_hit")
    jobs.count("stage_sum:build", 2.5)
    counters = jobs.counters()
    assert counters["cache_hit"] == 2.0
    assert counters["stage_sum:build"] == 2.5
    jobs.ping()


def test_a_build_running_nowhere_is_ended_by_cancel_and_replaced(jobs: JobBackend) -> None:
    """A running build whose worker stopped beating (lost with its broker, a crashed runner):
    cancel ends it at once, and a new request for its key is not joined to it."""
    long_ago = time.time() - 10 * STALE_S
    record, _ = jobs.create(_record("lost-key"))
    jobs.start(record.id)
    beating, _ = jobs.create(_record("beating-key"))
    jobs.start(beating.id)
    jobs.heartbeat(beating.id)
    assert jobs.get(beating.id).heartbeat_at is not None
    assert jobs.cancel(beating.id).state == "running"  # alive: cancelled at its next poll

    _force_started_at(jobs, record.id, long_ago)
    again, created = jobs.create(_record("lost-key"))
    assert created and again.id != record.id
    assert jobs.get(record.id).state == "failed"
    assert "gave no sign of life" in (jobs.get(record.id).error or "")

    jobs.start(again.id)
    _force_started_at(jobs, again.id, long_ago)
    ended = jobs.cancel(again.id)
    assert ended.state == "cancelled"
    assert "no worker was running it" in (ended.error or "")


def _force_started_at(jobs: JobBackend, build_id: str, when: float) -> None:
    """Age a running build's signs of life (what a lost worker leaves behind)."""
    record = jobs.get(build_id).model_copy(update={"started_at": when, "heartbeat_at": None})
    if isinstance(jobs, MemoryJobs):
        with jobs._lock:
            jobs._records[build_id] = record
    else:
        assert isinstance(jobs, RedisJobs)
        jobs.r.set(f"ww:build:{build_id}", record.model_dump_json())


def test_a_reader_never_sees_a_build_left_running_by_a_lost_worker(jobs: JobBackend) -> None:
    record, _ = jobs.create(_record("settle-key"))
    jobs.start(record.id)
    jobs.heartbeat(record.id)
    assert settled(jobs, record.id, 60).state == "running"  # alive
    _force_started_at(jobs, record.id, time.time() - 60 - STALE_S // 2)
    assert settled(jobs, record.id, 60).state == "running"  # may still be redelivered
    _force_started_at(jobs, record.id, time.time() - 60 - 2 * STALE_S)
    ended = settled(jobs, record.id, 60)
    assert ended.state == "failed"
    assert "no worker gave a sign of life for 60 s" in (ended.error or "")
    assert jobs.create(_record("settle-key"))[1], "its request key is free again"


def test_a_requester_holds_at_most_its_limit_of_live_builds(jobs: JobBackend) -> None:
    ci, other = Requester(via="cli", token="ci"), Requester(via="cli", token="other")
    first, _ = jobs.create(_record("q1", requested_by=ci), limit=2)
    second, _ = jobs.create(_record("q2", requested_by=ci), limit=2)
    refused = _record("q3", requested_by=ci)
    with pytest.raises(BusyError, match=r"2 builds of token 'ci' are queued or running already"):
        jobs.create(refused, limit=2)
    with pytest.raises(BuildNotFoundError):
        jobs.get(refused.id)  # nothing kept of it
    joined, created = jobs.create(_record("q1", requested_by=ci), limit=2)
    assert (joined.id, created) == (first.id, False)  # joining a live build is never refused
    jobs.create(_record("q4", requested_by=other), limit=2)  # another token's own count
    jobs.create(_record("q5", requested_by=ci))  # not counted (a project's own package)
    jobs.start(second.id)
    jobs.finish(second.id, "failed", error="boom")  # an ended build frees its place
    third, created = jobs.create(_record("q6", requested_by=ci), limit=2)
    assert created
    with pytest.raises(BusyError):
        jobs.create(_record("q7", requested_by=ci), limit=2)
    jobs.cancel(third.id)
    jobs.create(_record("q7", requested_by=ci), limit=2)


def test_a_lost_build_does_not_hold_its_requesters_place(jobs: JobBackend) -> None:
    ci = Requester(via="cli", token="ci")
    stuck, _ = jobs.create(_record("lost-1", requested_by=ci), limit=1)
    jobs.start(stuck.id)
    _force_started_at(jobs, stuck.id, time.time() - STALE_S - 5)  # its worker died long ago
    _fresh, created = jobs.create(_record("lost-2", requested_by=ci), limit=1)
    assert created
    assert jobs.get(stuck.id).state == "failed"
