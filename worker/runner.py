"""Run one queued build by id: the body of the Celery task and of the in-process runner.

It owns the job's life: a delivery starts (attempts + 1; too many and the build fails instead of
looping), a redelivered build first clears what its lost attempt left, stages and log lines go to
the job backend as they happen, the cancel flag is polled, and the outcome is recorded. The build
reads what the API prepared from the record (`service.prepare`); its log goes to the store once,
when it ends (`worker.pipeline.keep_log`), so it outlives Redis.
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
from celery.exceptions import SoftTimeLimitExceeded

from service.config import Settings
from service.errors import BuildCancelledError, ConfigError, WheelwrightError
from service.jobs import JobBackend
from service.jobs.transitions import HEARTBEAT_S
from service.layout import build_log_key
from service.metrics import record_compiler_cache, record_stage
from service.models import ArchiveSource, BuildRecord, BuildRequest, StageTiming
from service.prepare import Prepared, build_image
from service.printable import printable
from service.redact import Redactor
from service.store import WheelStore
from worker.engine import Hooks, StageEvent, log_path
from worker.executors import Executor
from worker.pipeline import build_and_publish

#: how long an ended build's live log stays for readers still following it
LOG_LINGER_S = 600
log = structlog.get_logger("wheelwright.runner")
TIME_LIMIT_ERROR = "the build hit the worker's time limit"


@dataclass
class Services:
    settings: Settings
    store: WheelStore
    jobs: JobBackend
    executor: Executor


def run_job(build_id: str, svc: Services, *, may_retry: bool = False) -> str:
    """Run build `build_id`; return its final state.

    With `may_retry`, a retryable error (engine or store unreachable) propagates so the queue
    delivers the build again; without, it fails the build. Celery's soft time limit ends the
    build here too, with the same bookkeeping as any other end.
    """
    jobs = svc.jobs
    structlog.contextvars.bind_contextvars(build_id=build_id)
    try:
        record = jobs.get(build_id)
        if record.terminal:
            return record.state  # cancelled while queued, or a duplicate delivery
        record = jobs.start(build_id)
        state = _run(record, svc, may_retry=may_retry)
        jobs.count(f"builds_{state}")
        log_path(svc.settings, build_id).unlink(missing_ok=True)  # the store has it now
        if svc.store.exists(build_log_key(build_id)):  # Redis keeps only what is live
            jobs.expire_log(build_id, LOG_LINGER_S)
        log.info("build.end", state=state)
        return state
    finally:
        structlog.contextvars.unbind_contextvars("build_id")


def _run(record: BuildRecord, svc: Services, *, may_retry: bool) -> str:
    """One delivery of a started build, to its final state."""
    jobs, settings, build_id = svc.jobs, svc.settings, record.id
    try:
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
        with _heartbeat(jobs, build_id), _materialized(record.request, svc) as request:
            outcome = build_and_publish(
                prepared_for(record, request, svc),
                settings,
                svc.store,
                svc.executor,
                build_id=build_id,
                hooks=hooks,
                requested_by=record.requested_by,
            )
    except BuildCancelledError as exc:
        return jobs.finish(build_id, "cancelled", error=str(exc)).state
    except WheelwrightError as exc:
        if exc.retryable and may_retry:
            jobs.append_log(build_id, printable(f"--- {exc}; the build will be tried again"))
            raise
        error = printable(Redactor.for_service(settings)(str(exc)))
        return jobs.finish(build_id, "failed", error=error, error_stage=exc.stage).state
    except SoftTimeLimitExceeded:  # Celery's: past the longest deadline a build may ask for
        svc.executor.reap(build_id)
        return jobs.finish(build_id, "failed", error=TIME_LIMIT_ERROR).state
    except Exception as exc:  # a bug or a broken host: the build still ends, with its cause
        log.exception("build.crashed", error=type(exc).__name__)
        error = printable(
            f"internal error ({type(exc).__name__}: {exc}); the worker log has details"
        )
        return jobs.finish(build_id, "failed", error=error).state
    if not outcome.cached:
        record_compiler_cache(jobs, outcome.artifact.manifest)
    return jobs.finish(build_id, "succeeded", artifact=outcome.artifact.summary()).state


def prepared_for(record: BuildRecord, request: BuildRequest, svc: Services) -> Prepared:
    """What the API prepared for this build; `ConfigError` if this worker would build it in
    another image than the one the API keyed it by (the two configured with other executors)."""
    mine = build_image(record.request.target, svc.settings, svc.executor.name)
    if record.image is not None and record.image != mine:
        raise ConfigError(
            f"this worker builds in {mine!r} (executor {svc.executor.name}), but the API keyed"
            f" build {record.id} for {record.image!r}: configure the same `executor` and"
            " `host.inherit_packages` for the API and the workers of this queue"
        )
    return Prepared.from_record(record, request=request, image=mine)


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
