"""The runner's rules (worker/runner.py `run_job`) over the fake executor, the in-memory job
backend and a local store: deliveries counted and capped, a redelivered build reaped first,
cancel while queued or during a stage, retryable errors, a crash that still ends the build."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from service.config import Settings
from service.dashboard.logs import build_log
from service.dispatch import InProcessDispatcher
from service.errors import ExecutorError, InvalidArtifactError
from service.jobs import MemoryJobs
from service.models import BuildRecord
from service.store import LocalStore
from service.submit import submit
from tests.buildkit import leftover_workspaces, make_sdist, uploaded_request
from tests.executor_conformance import EXECUTOR_STAGES
from tests.fakes import FakeExecutor, Hang, Raise, RecordingDispatcher
from worker import runner
from worker.runner import Services, run_job


@pytest.fixture
def svc(settings: Settings, store: LocalStore, jobs: MemoryJobs, fake: FakeExecutor) -> Services:
    return Services(settings, store, jobs, fake)


def queued(svc: Services, tmp_path: Path, name: str = "modern_ext") -> BuildRecord:
    """A build queued the way the API queues one: an uploaded sdist, through `submit`."""
    folder = tmp_path / f"sdist-{name}"
    folder.mkdir(exist_ok=True)
    request = uploaded_request(svc.store, make_sdist("modern-ext", folder, name, "2.0.0"))
    dispatcher = RecordingDispatcher()
    record = submit(request, svc.settings, svc.store, svc.jobs, dispatcher).record
    assert record is not None and dispatcher.submitted == [record]
    return record


def stored_log(svc: Services, build_id: str) -> str:
    """The build's log as the store keeps it (wherever the layout puts it)."""
    (key,) = [o.key for o in svc.store.list("") if build_id in o.key and o.key.endswith(".log")]
    return svc.store.get(key).decode()


def wheels(svc: Services) -> list[str]:
    return [o.key for o in svc.store.list("") if o.key.endswith(".whl")]


def test_a_build_runs_to_success_with_its_bookkeeping(
    svc: Services, fake: FakeExecutor, tmp_path: Path
) -> None:
    record = queued(svc, tmp_path)
    assert run_job(record.id, svc) == "succeeded"
    done = svc.jobs.get(record.id)
    assert done.state == "succeeded" and done.attempts == 1
    assert done.artifact is not None
    assert str(done.artifact["filename"]).startswith("modern_ext-2.0.0-")
    assert [s.name for s in done.stages] == ["fetch", *EXECUTOR_STAGES, "publish"]
    assert all(s.ok for s in done.stages)
    lines, _ = svc.jobs.read_log(record.id)
    assert "<=== [build] ok" in "\n".join(lines)
    assert "<=== [verify] ok" in stored_log(svc, record.id)
    assert len(wheels(svc)) == 1
    assert svc.jobs.counters()["builds_succeeded"] == 1
    assert fake.reaped == []  # a first delivery has nothing to clear
    assert leftover_workspaces(svc.settings) == []
    assert list((svc.settings.home / "logs").glob("*.log")) == [], "the log is in the store"


def test_a_duplicate_delivery_of_a_finished_build_does_nothing(
    svc: Services, fake: FakeExecutor, tmp_path: Path
) -> None:
    record = queued(svc, tmp_path)
    assert run_job(record.id, svc) == "succeeded"
    assert run_job(record.id, svc) == "succeeded"
    assert fake.sessions == 1 and svc.jobs.get(record.id).attempts == 1


def test_a_redelivered_build_clears_its_lost_attempt_first(
    svc: Services, fake: FakeExecutor, tmp_path: Path
) -> None:
    record = queued(svc, tmp_path)
    svc.jobs.start(record.id)  # a first delivery whose worker was lost
    reaped_before: list[list[str | None]] = []
    fake.on_stage = lambda _stage: reaped_before.append(list(fake.reaped))
    assert run_job(record.id, svc) == "succeeded"
    assert reaped_before[0] == [record.id], "the lost attempt is reaped before any stage"
    assert svc.jobs.get(record.id).attempts == 2
    lines, _ = svc.jobs.read_log(record.id)
    assert lines[0] == "--- delivery 2: clearing the lost attempt"


def test_too_many_deliveries_fail_the_build_without_running_it(
    svc: Services, fake: FakeExecutor, tmp_path: Path
) -> None:
    record = queued(svc, tmp_path)
    for _ in range(svc.settings.queue.max_attempts):
        svc.jobs.start(record.id)  # each delivery lost with its worker
    assert run_job(record.id, svc) == "failed"
    done = svc.jobs.get(record.id)
    attempts = svc.settings.queue.max_attempts
    assert done.error == f"gave up after {attempts} deliveries: the worker was lost each time"
    assert done.attempts == attempts + 1
    assert fake.sessions == 0 and wheels(svc) == []


def test_cancelled_while_queued_never_runs(
    svc: Services, fake: FakeExecutor, tmp_path: Path
) -> None:
    record = queued(svc, tmp_path)
    assert svc.jobs.cancel(record.id).state == "cancelled"
    assert run_job(record.id, svc) == "cancelled"
    assert fake.sessions == 0 and svc.jobs.get(record.id).attempts == 0


@pytest.mark.parametrize("stage", ["runtime", "build", "verify"])
def test_cancelled_during_a_stage_stops_there(
    svc: Services, fake: FakeExecutor, tmp_path: Path, stage: str
) -> None:
    record = queued(svc, tmp_path)
    fake.script[stage] = Hang()

    def cancel_at(now: str) -> None:
        if now == stage:
            svc.jobs.cancel(record.id)

    fake.on_stage = cancel_at
    assert run_job(record.id, svc) == "cancelled"
    done = svc.jobs.get(record.id)
    assert f"cancelled during {stage}" in (done.error or "")
    assert [s for s, _ in fake.ran][-1] == stage
    assert wheels(svc) == [], "nothing is published"
    assert leftover_workspaces(svc.settings) == [] and fake.open_sessions == 0
    assert f"killing the fake {stage} stage" in stored_log(svc, record.id)
    assert svc.jobs.counters()["builds_cancelled"] == 1


def test_a_retryable_error_is_raised_for_the_queue_when_it_may_retry(
    svc: Services, fake: FakeExecutor, tmp_path: Path
) -> None:
    record = queued(svc, tmp_path)
    fake.script["runtime"] = Raise(ExecutorError("the Docker engine is unreachable"))
    with pytest.raises(ExecutorError, match="unreachable"):
        run_job(record.id, svc, may_retry=True)
    after = svc.jobs.get(record.id)
    assert not after.terminal, "the queue delivers it again"
    lines, _ = svc.jobs.read_log(record.id)
    assert "--- the Docker engine is unreachable; the build will be tried again" in lines

    del fake.script["runtime"]  # the next delivery: the engine is back
    assert run_job(record.id, svc, may_retry=True) == "succeeded"
    assert fake.reaped == [record.id]
    assert svc.jobs.get(record.id).attempts == 2


def test_a_retryable_error_fails_the_build_on_its_last_try(
    svc: Services, fake: FakeExecutor, tmp_path: Path
) -> None:
    record = queued(svc, tmp_path)
    fake.script["build_deps"] = Raise(ExecutorError("the Docker engine is unreachable"))
    assert run_job(record.id, svc, may_retry=False) == "failed"
    done = svc.jobs.get(record.id)
    assert done.error == "the Docker engine is unreachable"
    assert done.error_stage == "build_deps"
    assert "<=== [build_deps] FAILED" in stored_log(svc, record.id)


def test_a_lasting_error_fails_the_build_even_when_it_may_retry(
    svc: Services, fake: FakeExecutor, tmp_path: Path
) -> None:
    record = queued(svc, tmp_path)
    fake.script["build"] = Raise(InvalidArtifactError("the wheel is truncated"))
    assert run_job(record.id, svc, may_retry=True) == "failed"
    assert svc.jobs.get(record.id).error_stage == "build"


def test_a_crash_still_ends_the_build_with_its_cause(
    svc: Services, fake: FakeExecutor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug (not a Wheelwright error) in a build that `wheelwright serve` runs in its thread
    (the in-process dispatcher): the build still fails, with its cause and its traceback."""
    fake.script["requires"] = Raise(RuntimeError("simulated bug in the executor"))
    dispatcher = InProcessDispatcher(lambda build_id: run_job(build_id, svc, may_retry=True))
    request = uploaded_request(svc.store, make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0"))
    record = submit(request, svc.settings, svc.store, svc.jobs, dispatcher).record
    assert record is not None
    deadline = time.monotonic() + 30
    while not svc.jobs.get(record.id).terminal and time.monotonic() < deadline:
        time.sleep(0.05)
    done = svc.jobs.get(record.id)
    assert done.state == "failed"
    assert "internal error (RuntimeError: simulated bug in the executor)" in (done.error or "")
    logged = capsys.readouterr().out
    assert "build.crashed" in logged and "Traceback" in logged
    assert leftover_workspaces(svc.settings) == [] and fake.open_sessions == 0
    assert "<=== [requires] FAILED" in stored_log(svc, record.id)
    again = queued(svc, tmp_path)
    assert again.id != record.id, "a new request must not join the failed build"


def test_a_wheel_that_is_not_the_request_is_not_published(
    svc: Services, fake: FakeExecutor, tmp_path: Path
) -> None:
    """A build that produces another project's wheel (index poisoning) fails at publish."""
    record = queued(svc, tmp_path)
    fake.wheel_name = "numpy"
    assert run_job(record.id, svc) == "failed"
    done = svc.jobs.get(record.id)
    assert done.error_stage == "publish"
    assert "the wheel is for project 'numpy'" in (done.error or "")
    assert wheels(svc) == []
    assert [o.key for o in svc.store.list("") if o.key.endswith(".json")] == []
    assert "<=== [publish] FAILED" in stored_log(svc, record.id)


def test_an_ended_builds_live_log_expires_and_readers_get_the_stored_one(
    svc: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "LOG_LINGER_S", 0)
    record = queued(svc, tmp_path)
    assert run_job(record.id, svc) == "succeeded"
    assert svc.jobs.log_tail(record.id, 10)[0] == []  # Redis keeps only what is live
    page = build_log(svc.store, svc.jobs, record.id, None, None)
    assert page.size is not None and page.lines  # the dashboard reads the store's copy
    assert "===> [build]" in stored_log(svc, record.id)
