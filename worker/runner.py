"""Run one queued build by id: the body of the Celery task and of the in-process runner.

It owns the job's life: a delivery starts (attempts + 1; too many and the build fails instead of
looping), a redelivered build first clears what its lost attempt left, stages and log lines go to
the job backend as they happen, the cancel flag is polled, and the outcome is recorded. The log
always goes to the store, so it outlives Redis.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from service.config import Settings
from service.errors import BuildCancelledError, WheelwrightError
from service.jobs import JobBackend
from service.jobs.transitions import HEARTBEAT_S
from service.metrics import record_compiler_cache, record_stage
from service.models import ArchiveSource, BuildRequest, StageTiming
from service.redact import Redactor
from service.store import WheelStore
from worker.engine import Hooks, StageEvent
from worker.executors import Executor
from worker.pipeline import build_and_publish

log = structlog.get_logger("wheelwright.runner")


@dataclass
class Services:
    settings: Settings
    store: WheelStore
    jobs: JobBackend
    executor: Executor


def build_log_key(build_id: str) -> str:
    return f"logs/builds/{build_id}.log"


def run_job(build_id: str, svc: Services, *, may_retry: bool = False) -> str:
    """Run build `build_id`; return its final state.

    With `may_retry`, a retryable error (engine or store unreachable) propagates so the queue
    delivers the build again; without, it fails the build.
    """
    jobs, settings = svc.jobs, svc.settings
    structlog.contextvars.bind_contextvars(build_id=build_id)
    try:
        record = jobs.get(build_id)
        if record.terminal:
            return record.state  # cancelled while queued, or a duplicate delivery
        record = jobs.start(build_id)
        if record.attempts > settings.queue.max_attempts:
            message = (
                f"gave up after {record.attempts - 1} deliveries: the worker was lost each time"
            )
            return jobs.finish(build_id, "failed", error=message).state
        if record.attempts > 1:
            jobs.append_log(build_id, f"--- delivery {record.attempts}: clearing the lost attempt")
            svc.executor.reap(build_id)
        log.info("build.start", attempt=record.attempts, queue=record.queue)
        hooks = Hooks(
            on_stage=lambda event: _stage(jobs, event),
            on_line=lambda line: jobs.append_log(build_id, line),
            cancelled=lambda: jobs.cancelled(build_id),
        )
        try:
            with _heartbeat(jobs, build_id), _materialized(record.request, svc) as request:
                outcome = build_and_publish(
                    request, settings, svc.store, svc.executor, build_id=build_id, hooks=hooks
                )
        except BuildCancelledError as exc:
            state = jobs.finish(build_id, "cancelled", error=str(exc)).state
        except WheelwrightError as exc:
            if exc.retryable and may_retry:
                jobs.append_log(build_id, f"--- {exc}; the build will be tried again")
                raise
            error = Redactor.for_service(settings)(str(exc))
            state = jobs.finish(build_id, "failed", error=error, error_stage=exc.stage).state
        except Exception as exc:  # a bug or a broken host: the build still ends, with its cause
            log.exception("build.crashed", error=type(exc).__name__)
            error = f"internal error ({type(exc).__name__}: {exc}); the worker log has details"
            state = jobs.finish(build_id, "failed", error=error).state
        else:
            if not outcome.cached:
                record_compiler_cache(jobs, outcome.artifact.manifest)
            state = jobs.finish(build_id, "succeeded", artifact=outcome.artifact.summary()).state
        jobs.count(f"builds_{state}")
        _keep_log(build_id, svc)
        log.info("build.end", state=state)
        return state
    finally:
        structlog.contextvars.unbind_contextvars("build_id")


def _stage(jobs: JobBackend, event: StageEvent) -> None:
    timing = StageTiming(name=event.stage, seconds=event.seconds, network=event.network)
    if event.seconds is not None:
        timing = timing.model_copy(update={"ok": event.ok})
        record_stage(jobs, event.stage, event.seconds)
    jobs.record_stage(event.build_id, timing)


@contextmanager
def _heartbeat(jobs: JobBackend, build_id: str) -> Iterator[None]:
    """Tell the job backend every few seconds that this build still runs here."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            try:
                jobs.heartbeat(build_id)
            except WheelwrightError as exc:  # Redis away for a moment: the next beat may pass
                log.warning("build.heartbeat_failed", error=str(exc))
            stop.wait(HEARTBEAT_S)

    thread = threading.Thread(target=beat, name=f"heartbeat-{build_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@contextmanager
def _materialized(request: BuildRequest, svc: Services) -> Iterator[BuildRequest]:
    """An uploaded archive, fetched from the store to a local file for the fetch stage."""
    source = request.source
    if not isinstance(source, ArchiveSource) or source.store_key is None:
        yield request
        return
    svc.settings.home.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=svc.settings.home))
    try:
        local = folder / Path(source.store_key).name
        with svc.store.open(source.store_key) as stream, local.open("wb") as out:
            shutil.copyfileobj(stream, out)
        local_source = source.model_copy(update={"path": str(local), "store_key": None})
        yield request.model_copy(update={"source": local_source})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _keep_log(build_id: str, svc: Services) -> None:
    path = svc.settings.home / "logs" / f"{build_id}.log"
    if path.is_file():
        svc.store.put(build_log_key(build_id), path.read_bytes(), content_type="text/plain")
        path.unlink()
