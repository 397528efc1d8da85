"""The executor swap point: a Protocol, and the JSON file exchange every executor shares.

An executor opens a session for one build (an image ready, a workspace laid out) and runs planned
stages in it. Stages talk back only through `io/<stage>.result.json`, written by the driver.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from service.errors import BuildCancelledError, BuildFailedError, DeadlineExceededError
from service.models import BuildRequest, Target
from worker.plan import Layout, Machine, StagePlan

LOG_TAIL_LINES = 40


@dataclass
class StageContext:
    """What a running stage may report to, and when it must stop."""

    build_id: str
    deadline: float
    log: Callable[[str], None] = lambda _line: None
    cancelled: Callable[[], bool] = lambda: False
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))

    def emit(self, line: str) -> None:
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
    """Where builds run: `docker` (default) or `host`."""

    name: str

    def image_ref(self, target: Target) -> str:
        """The reference that names the build image of `target` in keys and environments."""
        ...

    def session(
        self, request: BuildRequest, workspace: Path, progress: Callable[[str], None]
    ) -> AbstractContextManager[ExecSession]:
        """Prepare one build's image and workspace; leave nothing running on exit."""
        ...

    def reap(self, build_id: str | None = None) -> int:
        """Remove leftovers of dead builds (containers, processes); return how many.

        With `build_id`, everything that build left, deadline or not: a redelivered build
        clears what its lost attempt left before it starts again.
        """
        ...


def write_stage_request(workspace: Path, stage: StagePlan) -> None:
    io = workspace / "io"
    io.mkdir(parents=True, exist_ok=True)
    (io / f"{stage.name}.result.json").unlink(missing_ok=True)
    (io / f"{stage.name}.request.json").write_text(json.dumps(dict(stage.request), indent=2))


def read_stage_result(
    workspace: Path, stage: StagePlan, exit_code: int, ctx: StageContext
) -> dict[str, Any]:
    """The driver's data, or the build error its result file (or its absence) tells of."""
    path = workspace / "io" / f"{stage.name}.result.json"
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        raise BuildFailedError(
            stage.name, f"the driver left no result (exit code {exit_code})", ctx.log_tail()
        ) from None
    if not result.get("ok"):
        error = result.get("error") or {}
        raise BuildFailedError(stage.name, str(error.get("message", "unknown")), ctx.log_tail())
    data: dict[str, Any] = result.get("data") or {}
    return data


def check_stop(stage: StagePlan, ctx: StageContext) -> None:
    """Raise if the stage must stop now: cancelled or past its deadline."""
    if ctx.cancelled():
        raise BuildCancelledError(f"build {ctx.build_id} was cancelled during {stage.name}")
    if ctx.remaining() <= 0:
        raise DeadlineExceededError(stage.name, "the build outlived its deadline", ctx.log_tail())


def split_lines(buffer: str) -> tuple[list[str], str]:
    """Complete lines of a stream chunk, and the unfinished rest."""
    *lines, rest = buffer.split("\n")
    return [line.rstrip("\r") for line in lines], rest
