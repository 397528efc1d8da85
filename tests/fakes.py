"""A fake executor: the `Executor` Protocol honoured in-process, with no container and no venv.

Each stage goes through the same file exchange as the real executors (the engine's plan is
written to `io/<stage>.request.json` with `write_stage_request`, a stand-in driver writes
`io/<stage>.result.json`, and `read_stage_result` turns it back into data or a build error), so
the engine, runner and publish code run exactly as they do around Docker. What a stage answers
comes from `stage_data` (the one place to adapt when the stage contract changes) unless a script
says otherwise: a driver failure, a stage that runs until it is cancelled or killed at its
deadline, an error raised by the executor itself, or no result at all.

The build stage writes a small valid wheel named after what the fetched source says it is, so
publish checks it like any other. Nothing is left behind: sessions are counted open and closed,
and `reap` tells what it would have removed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from service.config import Settings
from service.keys import image_ref
from service.models import BuildRecord, BuildRequest
from tests.fixtures.wheels import make_wheel
from worker.driver.contract import (
    BuildDepsResult,
    RequiresInstallResult,
    RequiresResult,
    RuntimeResult,
    VerifyResult,
    WheelResult,
)
from worker.executors.base import StageContext, check_stop, read_stage_result, write_stage_request
from worker.identity import expected_identity
from worker.plan import Layout, Machine, StagePlan
from worker.unpack import project_root

#: How long a `Hang` stage may run before the fake gives up (a test bug, not a build's deadline).
HANG_LIMIT_S = 60.0


@dataclass(frozen=True)
class Fail:
    """The driver reports a failure (`{"ok": false, ...}`); `offline_only`: only while the stage
    runs with the network off (a backend that must reach the network to answer)."""

    message: str
    offline_only: bool = False


@dataclass(frozen=True)
class Hang:
    """The stage runs until it is cancelled or its deadline passes (it is then killed)."""


@dataclass(frozen=True)
class Raise:
    """The executor itself raises `error` (an engine that went away, a bug)."""

    error: Exception


@dataclass(frozen=True)
class NoResult:
    """The driver dies without writing its result file."""


Outcome = Fail | Hang | Raise | NoResult


StageResult = (
    RuntimeResult
    | BuildDepsResult
    | RequiresResult
    | RequiresInstallResult
    | WheelResult
    | VerifyResult
)


def stage_data(stage: StagePlan, session: FakeSession) -> StageResult:
    """What each stage's driver answers when all goes well, typed by the stage contract
    (worker/driver/contract.py), so a contract change breaks the fake where mypy sees it.
    The build stage writes its wheel into the layout's out folder."""
    python = session.request.target.python
    match stage.name:
        case "runtime":
            pins = [pin for pin in session.request.runtime if "==" in pin]
            return RuntimeResult(python=f"{python}.0", freeze=pins, inherited=[])
        case "build_deps":
            return BuildDepsResult(build_system={"backend": "fake"}, static=["setuptools>=77"])
        case "requires":
            return RequiresResult(dynamic=[])
        case "requires_install":
            return RequiresInstallResult(dynamic=[], freeze=["setuptools==80.9.0"])
        case "build":
            wheel = session.make_wheel()
            return WheelResult(wheel=session.executor.wheel_file or wheel.name, compiler_cache=None)
        case "verify":
            return VerifyResult(imported=[session.module], tags=["py3-none-any"], gpu={})
    raise AssertionError(f"the fake executor has no stage {stage.name!r}")


@dataclass
class FakeSession:
    """One build's session: the workspace as the layout, the request, the script."""

    executor: FakeExecutor
    request: BuildRequest
    workspace: Path
    layout: Layout
    machine: Machine
    facts: Mapping[str, Any]
    module: str = ""

    def run(self, stage: StagePlan[Any], ctx: StageContext) -> dict[str, Any]:
        io = self.workspace / "io"
        write_stage_request(io, stage)
        check_stop(stage, ctx)
        self.executor.ran.append((stage.name, stage.network))
        self.executor.on_stage(stage.name)
        outcome = self.executor.script.get(stage.name)
        ctx.emit(f"fake {stage.name}: running (network {'on' if stage.network else 'off'})")
        if isinstance(outcome, Raise):
            raise outcome.error
        if isinstance(outcome, Hang):
            _hang(stage, ctx)
        exit_code = self._drive(io, stage, outcome, ctx)
        return read_stage_result(io, stage, exit_code, ctx)

    def _drive(self, io: Path, stage: StagePlan, outcome: Outcome | None, ctx: StageContext) -> int:
        """The stand-in driver: read the request file, write the result file."""
        request = json.loads((io / f"{stage.name}.request.json").read_text())
        assert isinstance(request, dict)
        if isinstance(outcome, NoResult):
            return 137
        result: dict[str, Any]
        if isinstance(outcome, Fail) and not (outcome.offline_only and stage.network):
            ctx.emit(outcome.message)  # what the driver prints is the stage's log
            result = {"ok": False, "error": {"kind": "backend", "message": outcome.message}}
        else:
            result = {"ok": True, "data": stage_data(stage, self)}
        (io / f"{stage.name}.result.json").write_text(json.dumps(result))
        return 0 if result["ok"] else 1

    def make_wheel(self) -> Path:
        """A wheel of the project the fetched source says it is, for the target's Python."""
        expected = expected_identity(self.request, project_root(self.workspace / "src"))
        name = self.executor.wheel_name or expected.project or "unnamed"
        version = expected.version or "0"
        self.module = canonicalize_name(name).replace("-", "_")
        tag = "cp{0}-cp{0}-linux_x86_64".format(self.request.target.python.replace(".", ""))
        return make_wheel(Path(self.layout.outdir), name, version, tag=tag)


def _hang(stage: StagePlan, ctx: StageContext) -> None:
    started = time.monotonic()
    while time.monotonic() - started < HANG_LIMIT_S:
        try:
            check_stop(stage, ctx)
        except Exception:
            ctx.emit(f"!! killing the fake {stage.name} stage")
            raise
        time.sleep(0.02)
    raise AssertionError(f"the fake {stage.name} stage was never stopped")


@dataclass
class FakeExecutor:
    """Runs stages in this process. `script` maps stage names to what goes wrong there;
    `on_stage` is called as each stage starts (to cancel a build mid-way, say)."""

    settings: Settings
    script: dict[str, Outcome] = field(default_factory=dict)
    on_stage: Callable[[str], None] = lambda _stage: None
    #: the project the wheel claims to be (default: what the source says)
    wheel_name: str | None = None
    #: the file name the build stage reports (default: the wheel it wrote)
    wheel_file: str | None = None
    name: str = "fake"
    compiler_cache: bool = False
    #: (stage, network) in the order the stages ran
    ran: list[tuple[str, bool]] = field(default_factory=list)
    #: build ids passed to `reap`, in order (None: a sweep of every dead build)
    reaped: list[str | None] = field(default_factory=list)
    open_sessions: int = 0
    sessions: int = 0

    @contextmanager
    def session(
        self,
        request: BuildRequest,
        workspace: Path,
        progress: Callable[[str], None],
        *,
        compiler_cache: Path | None = None,
    ) -> Iterator[FakeSession]:
        del compiler_cache  # like the host executor: no cache at a fixed path
        for sub in ("io", "out", "tmp"):
            (workspace / sub).mkdir(parents=True, exist_ok=True)
        progress("fake executor: stages run in-process")
        self.open_sessions += 1
        self.sessions += 1
        try:
            yield FakeSession(
                executor=self,
                request=request,
                workspace=workspace,
                layout=Layout(
                    work=str(workspace), driver="/fake/driver", python=sys.executable, uv="uv"
                ),
                machine=Machine(cpus=2, memory_bytes=4 * 1024**3),
                facts={
                    "executor": self.name,
                    "image": image_ref(request.target, "docker"),  # as the docker executor names it
                    "image_id": "fake",
                },
            )
        finally:
            self.open_sessions -= 1

    def reap(self, build_id: str | None = None) -> int:
        """Nothing outlives a stage here (no container, no process): nothing to remove."""
        self.reaped.append(build_id)
        return 0


@dataclass
class RecordingDispatcher:
    """A dispatcher that queues nothing: it keeps what it was given, or fails as a broker
    out of reach would."""

    fail: Exception | None = None
    submitted: list[BuildRecord] = field(default_factory=list)

    def submit(self, record: BuildRecord) -> None:
        if self.fail is not None:
            raise self.fail
        self.submitted.append(record)

    def submit_group(self, records: Sequence[BuildRecord]) -> None:
        if self.fail is not None:
            raise self.fail
        self.submitted.extend(records)

    def queue_length(self, queue: str) -> int | None:
        return sum(1 for record in self.submitted if record.queue == queue)
