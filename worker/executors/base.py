"""The executor swap point: a Protocol, and what every executor shares: the JSON file exchange,
the stage's environment, and the loop that waits for a stage while it streams its lines.

An executor opens a session for one build (an image ready, a workspace laid out) and runs planned
stages in it. Stages talk back only through `io/<stage>.result.json`, written by the driver in
the shape `worker/driver/contract.py` names; the driver's error kinds become the errors of
`service/errors.py` here (`ERRORS`), as pyproject-hooks maps its result flags to exceptions.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from service.errors import (
    BackendUnavailableError,
    BuildCancelledError,
    BuildFailedError,
    DeadlineExceededError,
    HookMissingError,
    VerifyFailedError,
)
from service.models import BuildRequest
from service.printable import printable
from worker.driver.contract import BAD_RESULT, ERROR_KINDS, NO_RESULT, check_result
from worker.executors.lines import DEFAULT_MAX_CHARS, LineSplitter
from worker.plan import Layout, Machine, StagePlan
from worker.proxy import PROXY_VARS
from worker.safe_files import read_regular

LOG_TAIL_LINES = 40
MAX_RESULT_BYTES = 16 * 1024**2
POLL_S = 1.0

#: The driver's error kinds with an error class of their own; every other kind is a
#: `BuildFailedError` carrying the kind.
ERRORS: dict[str, type[BuildFailedError]] = {
    "backend_unavailable": BackendUnavailableError,
    "hook_missing": HookMissingError,
    "tags": VerifyFailedError,
    "verify": VerifyFailedError,
    "undefined_symbols": VerifyFailedError,
    "cuda_archs": VerifyFailedError,
    "smoke": VerifyFailedError,
}


@dataclass
class StageContext:
    """What a running stage may report to, and when it must stop."""

    build_id: str
    deadline: float
    log: Callable[[str], None] = lambda _line: None
    cancelled: Callable[[], bool] = lambda: False
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    #: what a line becomes before anyone sees it (secrets masked; controls then made visible)
    clean: Callable[[str], str] = lambda line: line
    max_line_chars: int = DEFAULT_MAX_CHARS

    def emit(self, line: str) -> None:
        line = printable(self.clean(line))
        self.tail.append(line)
        self.log(line)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def log_tail(self) -> str:
        return "\n".join(self.tail)


class ExecSession(Protocol):
    """One build's place to run stages: its layout as the driver sees it and its resources."""

    layout: Layout
    machine: Machine
    facts: Mapping[str, Any]

    def run(self, stage: StagePlan[Any], ctx: StageContext) -> dict[str, Any]:
        """Run one stage to completion; return the driver's data (checked against the stage's
        result in `contract.py`) or raise a build error."""
        ...


class Executor(Protocol):
    """Where builds run: `docker` (default) or `host`. Its `name` names its images in keys
    (`service.prepare.build_image`), so the API, configured alike, keys builds the same."""

    name: str
    #: whether `session` can give the build stage a compiler cache at a fixed path
    compiler_cache: bool

    def session(
        self,
        request: BuildRequest,
        workspace: Path,
        progress: Callable[[str], None],
        *,
        compiler_cache: Path | None = None,
    ) -> AbstractContextManager[ExecSession]:
        """Prepare one build's image and workspace; leave nothing running on exit.

        `compiler_cache` is a host folder the build stage alone may write (the project's
        compiler cache); the layout names where the stage sees it, or None where this executor
        cannot give the build one at a fixed path.
        """
        ...

    def reap(self, build_id: str | None = None) -> int:
        """Remove leftovers of dead builds (containers, processes); return how many.

        With `build_id`, everything that build left, deadline or not: a redelivered build
        clears what its lost attempt left before it starts again.
        """
        ...


def write_stage_request(
    io: Path, stage: StagePlan[Any], executor_fields: Mapping[str, str] | None = None
) -> None:
    """Write the stage's request into `io` (with what the executor adds, such as the egress
    proxy's socket), never through a link a stage may have left."""
    io.mkdir(parents=True, exist_ok=True)
    (io / f"{stage.name}.result.json").unlink(missing_ok=True)
    path = io / f"{stage.name}.request.json"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(dict(stage.request) | dict(executor_fields or {}), indent=2))


def read_stage_result(
    io: Path, stage: StagePlan[Any], exit_code: int, ctx: StageContext
) -> dict[str, Any]:
    """The driver's data, or the build error its result file (or its absence) tells of.

    The file was written where the stage's (the package's) code could write too: it is read
    without following links and only up to `MAX_RESULT_BYTES`, and its data must have the
    stage's shape (`contract.check_result`) before anyone reads it.
    """
    raw = read_regular(io / f"{stage.name}.result.json", MAX_RESULT_BYTES)
    try:
        result = json.loads(raw) if raw is not None else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        cause = f"the driver left no result (exit code {exit_code})"
        raise BuildFailedError(stage.name, cause, ctx.log_tail(), kind=NO_RESULT)
    if not result.get("ok"):
        raise stage_error(stage.name, result.get("error"), ctx.log_tail())
    data = result.get("data")
    problems = check_result(stage.name, data)
    if problems or not isinstance(data, dict):
        cause = f"the driver's result does not fit the {stage.name} stage: {'; '.join(problems)}"
        raise BuildFailedError(stage.name, cause, ctx.log_tail(), kind=BAD_RESULT)
    return data


def stage_error(stage: str, error: object, log_tail: str) -> BuildFailedError:
    """The build error a driver's `{"kind": ..., "message": ...}` stands for."""
    body = error if isinstance(error, dict) else {}
    message = str(body.get("message") or "unknown")
    kind = str(body.get("kind") or "")
    if kind not in ERROR_KINDS:
        return BuildFailedError(stage, message, log_tail, kind=BAD_RESULT)
    return ERRORS.get(kind, BuildFailedError)(stage, message, log_tail, kind=kind)


def stage_environment(
    stage: StagePlan[Any],
    layout: Layout,
    *,
    path: str,
    passed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A stage's environment, for every executor: what the executor passes through from its
    own (`passed`), the venv first on `path`, the worker's proxies where the stage has the
    network (and no proxy where it has none), then the plan's environment of the stage."""
    env = {k: v for k, v in (passed or {}).items() if k not in PROXY_VARS}
    env["PATH"] = f"{layout.venv}/bin:{path}"
    if stage.network:
        env |= {k: v for k, v in os.environ.items() if k in PROXY_VARS}
    return env | dict(stage.env)


def supervise(
    stage: StagePlan[Any],
    ctx: StageContext,
    *,
    output: Iterable[bytes],
    wait: Callable[[float], int | None],
    kill: Callable[[], None],
    what: str,
    finish: Callable[[], None] = lambda: None,
) -> int:
    """Wait for a started stage and return its exit code, streaming its `output` into `ctx`.

    `wait(seconds)` returns the exit code, or None if the stage still runs after `seconds`.
    Between waits the cancel flag and the deadline are checked; when either says stop, `what`
    (the container, the process group) is killed and the build error raised. `finish` runs
    whatever happened, before the output thread is joined (it must end the output).
    """
    reader = threading.Thread(target=stream_lines, args=(output, ctx), daemon=True)
    reader.start()
    try:
        while True:
            code = wait(max(0.1, min(POLL_S, ctx.remaining())))
            if code is not None:
                return code
            try:
                check_stop(stage, ctx)
            except (DeadlineExceededError, BuildCancelledError):
                ctx.emit(f"!! killing the {stage.name} {what}")
                kill()
                raise
    finally:
        finish()
        reader.join(timeout=10)


def stream_lines(output: Iterable[bytes], ctx: StageContext) -> None:
    """Each line of `output` into `ctx`, cut at its bound."""
    lines = LineSplitter(ctx.max_line_chars)
    for chunk in output:
        for line in lines.feed_bytes(chunk):
            ctx.emit(line)
    for line in lines.finish():
        ctx.emit(line)


def check_stop(stage: StagePlan[Any], ctx: StageContext) -> None:
    """Raise if the stage must stop now: cancelled or past its deadline."""
    if ctx.cancelled():
        raise BuildCancelledError(f"build {ctx.build_id} was cancelled during {stage.name}")
    if ctx.remaining() <= 0:
        raise DeadlineExceededError(
            stage.name,
            "the build hit its deadline (the request's timeout_s, or the service's"
            " build_timeout_s) and was killed",
            ctx.log_tail(),
        )
