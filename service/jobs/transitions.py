"""How a build record changes: pure functions both job backends apply under their own locks."""

from __future__ import annotations

import time

from service.errors import JobStateError
from service.models import BuildRecord, BuildState, StageTiming

#: Seconds without a heartbeat after which a running build runs nowhere (workers beat every
#: `HEARTBEAT_S`).
HEARTBEAT_S = 10
STALE_S = 90


def started(record: BuildRecord) -> BuildRecord:
    if record.terminal:
        raise JobStateError(f"build {record.id} is already {record.state}")
    return record.model_copy(
        update={"state": "running", "attempts": record.attempts + 1, "started_at": time.time()}
    )


def with_stage(record: BuildRecord, timing: StageTiming) -> BuildRecord:
    stages = [s for s in record.stages if s.name != timing.name] + [timing]
    return record.model_copy(update={"stages": stages})


def finished(
    record: BuildRecord,
    state: BuildState,
    *,
    artifact: dict[str, object] | None,
    error: str | None,
    error_stage: str | None,
) -> BuildRecord:
    if record.terminal:
        return record  # a late duplicate delivery: the first outcome stands
    project = str((artifact or {}).get("project") or record.project)
    return record.model_copy(
        update={
            "project": project,
            "state": state,
            "finished_at": time.time(),
            "artifact": artifact,
            "error": error,
            "error_stage": error_stage,
        }
    )


def beat(record: BuildRecord) -> BuildRecord:
    """The worker running the build is alive."""
    if record.terminal:
        return record
    return record.model_copy(update={"heartbeat_at": time.time()})


def stale(record: BuildRecord, now: float | None = None, after_s: float = STALE_S) -> bool:
    """A running build whose worker gave no sign of life for `after_s`: running nowhere."""
    if record.state != "running":
        return False
    last = record.heartbeat_at or record.started_at or record.created_at
    return (now or time.time()) - last > after_s


def cancel_requested(record: BuildRecord) -> BuildRecord:
    if record.terminal:
        raise JobStateError(f"build {record.id} is already {record.state}; nothing to cancel")
    if record.state == "queued":
        return finished(record, "cancelled", artifact=None, error="cancelled", error_stage=None)
    if stale(record):
        error = f"cancelled; no worker was running it (no sign of life for {STALE_S} s)"
        return finished(record, "cancelled", artifact=None, error=error, error_stage=None)
    return record


def lost(record: BuildRecord) -> BuildRecord:
    """A stale running build, failed so a new request for its key can run."""
    error = f"lost: its worker gave no sign of life for {STALE_S} s"
    return finished(record, "failed", artifact=None, error=error, error_stage=None)


def matches(
    record: BuildRecord, state: str | None, project: str | None, environment: str | None
) -> bool:
    return (
        (state is None or record.state == state)
        and (project is None or record.project == project)
        and (environment is None or record.environment == environment)
    )
