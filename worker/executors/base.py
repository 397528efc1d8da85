"""The executor swap point: a Protocol, and the JSON file exchange every executor shares.

An executor opens a session for one build (an image ready, a workspace laid out) and runs planned
stages in it. Stages talk back only through `io/<stage>.result.json`, written by the driver.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from service.errors import BuildCancelledError, BuildFailedError, DeadlineExceededError
from service.models import BuildRequest
from worker.executors.lines import DEFAULT_MAX_CHARS
from worker.plan import Layout, Machine, StagePlan
from worker.safe_files import read_regular

LOG_TAIL_LINES = 40
MAX_RESULT_BYTES = 16 * 1024**2


@dataclass
class StageContext:
    """What a running stage may report to, and when it must stop."""

    build_id: str
    deadline: float
    log: Callable[[str], None] = lambda _line: None
    cancelled: Callable[[], bool] = lambda: False
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    #: what a line becomes before anyone sees it (secrets masked)
    clean: Callable[[str], str] = lambda line: line
    max_line_chars: int = DEFAULT_MAX_CHARS

    def emit(self, line: str) -> None:
        line = self.clean(line)
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

    def run(self, stage: StagePlan, ctx: StageContext) -> dict[str, Any]:
        """Run one stage to completion; return the driver's data or raise a build error."""
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


def write_stage_request(io: Path, stage: StagePlan) -> None:
    """Write the stage's request into `io`, never through a link a stage may have left."""
    io.mkdir(parents=True, exist_ok=True)
    (io / f"{stage.name}.result.json").unlink(missing_ok=True)
    path = io / f"{stage.name}.request.json"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(dict(stage.request), indent=2))


def read_stage_result(
    io: Path, stage: StagePlan, exit_code: int, ctx: StageContext
) -> dict[str, Any]:
    """The driver's data, or the build error its result file (or its absence) tells of.

    The file was written where the stage's (the package's) code could write too: it is read
    without following links and only up to `MAX_RESULT_BYTES`.
    """
    raw = read_regular(io / f"{stage.name}.result.json", MAX_RESULT_BYTES)
    try:
        result = json.loads(raw) if raw is not None else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise BuildFailedError(
            stage.name, f"the driver left no result (exit code {exit_code})", ctx.log_tail()
        )
    if not result.get("ok"):
        error = result.get("error") or {}
        message = str(error.get("message", "unknown")) if isinstance(error, dict) else "unknown"
        raise BuildFailedError(stage.name, message, ctx.log_tail())
    data = result.get("data") or {}
    if not isinstance(data, dict):
        raise BuildFailedError(stage.name, "the driver's result holds no data", ctx.log_tail())
    return data


def check_stop(stage: StagePlan, ctx: StageContext) -> None:
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
