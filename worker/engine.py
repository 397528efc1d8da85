"""One build from request to wheel: fetch, the executor's stages, then the hand-over to publish.

The engine owns the order of things and the bookkeeping (timings, log sections, the build's
facts); what a stage does and under which policy comes from `plan.py`, where it runs from the
executor. The manifest is written once, by publish, from the facts the engine hands over in
`Built`. The workspace is removed in `finally`; the caller publishes the wheel through
`on_wheel` while it still exists.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

import structlog

from service.artifacts.checks import Expected
from service.config import Settings
from service.egress import EgressPolicy
from service.errors import (
    BuildFailedError,
    DeadlineExceededError,
    InvalidArtifactError,
    WheelwrightError,
)
from service.keys import new_build_id
from service.models import BuildRequest, Requester
from service.prepare import Prepared, prepare
from service.printable import printable
from service.redact import Redactor
from service.store import WheelStore
from worker.cache_use import CacheUse
from worker.driver.contract import (
    BuildDepsResult,
    RequiresInstallResult,
    RequiresResult,
    RuntimeResult,
    VerifyResult,
    WheelResult,
)
from worker.executors import Executor, StageContext
from worker.executors.base import ExecSession
from worker.facts import MANIFEST_SCHEMA, StageResults, build_facts
from worker.fetch import Fetched, fetch, git_for, pin_source
from worker.plan import BuildPlan, StagePlan, make_plan, with_requires, with_wheel
from worker.safe_files import open_regular
from worker.unpack import Limits

__all__ = ["MANIFEST_SCHEMA", "Built", "Hooks", "StageEvent", "run_build", "take_wheel"]
T = TypeVar("T")
log = structlog.get_logger("wheelwright.engine")


@dataclass(frozen=True)
class StageEvent:
    """A stage started (`seconds` is None) or ended, for progress displays."""

    build_id: str
    stage: str
    network: bool
    seconds: float | None = None
    ok: bool = True


@dataclass
class Hooks:
    """How a build talks to whoever runs it: progress, log lines, cancellation."""

    on_stage: Callable[[StageEvent], None] = lambda _event: None
    on_line: Callable[[str], None] = lambda _line: None
    cancelled: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class Built:
    """A finished build whose wheel still lies in the workspace.

    `manifest` is the build's own sections of the manifest (`facts.build_facts`, the stage
    timings, the compiler cache); publish adds the wheel's, the log's and the reproducibility
    sections and writes it, once.
    """

    build_id: str
    request: BuildRequest
    request_key: str
    environment: str
    wheel: Path
    manifest: dict[str, Any]
    log_path: Path
    results: StageResults
    expected: Expected = field(default_factory=Expected)
    source_date_epoch: int | None = None


@dataclass
class _Recorder:
    build_id: str
    log_file: TextIO  # line-buffered: the file is whole whenever someone reads it
    hooks: Hooks
    clean: Callable[[str], str] = lambda text: text
    max_bytes: int = 64 * 1024**2
    stages: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    written: int = 0
    dropped_lines: int = 0
    dropped_bytes: int = 0

    def line(self, text: str) -> None:
        """Keep one line (secrets masked, controls shown as `^[`), unless the log already holds
        `max_bytes`: the stored log and every reader of the stream get it so."""
        text = printable(self.clean(text))
        size = len(text.encode("utf-8", "replace")) + 1
        with self.lock:  # stage output arrives from the executor's log thread too
            if self.written + size > self.max_bytes:
                self.dropped_lines += 1
                self.dropped_bytes += size
                return
            self.written += size
            if not self.log_file.closed:  # a straggling log thread after the build ended
                self.log_file.write(text + "\n")
        self.hooks.on_line(text)

    def close(self) -> None:
        with self.lock:
            dropped = self.dropped_lines
            marker = (
                f"[... log capped at {self.max_bytes} bytes: {dropped} lines"
                f" ({self.dropped_bytes} bytes) dropped]"
            )
            if dropped and not self.log_file.closed:
                self.log_file.write(marker + "\n")
            self.log_file.close()
        if dropped:
            self.hooks.on_line(marker)

    def run(self, stage: str, network: bool, action: Callable[[], T]) -> T:
        self.line(f"===> [{stage}] start (network {'on' if network else 'off'})")
        self.hooks.on_stage(StageEvent(self.build_id, stage, network))
        log.info("stage.start", build_id=self.build_id, stage=stage, network=network)
        started = time.monotonic()
        ok = False
        try:
            result = action()
        except WheelwrightError as exc:
            exc.stage = exc.stage or stage
            self.line(f"!! [{stage}] {type(exc).__name__}: {exc}")
            kind = exc.kind if isinstance(exc, BuildFailedError) else None
            log.warning("stage.failed", build_id=self.build_id, stage=stage, kind=kind)
            raise
        else:
            ok = True
            return result
        finally:
            seconds = round(time.monotonic() - started, 3)
            self.stages.append({"name": stage, "seconds": seconds, "network": network, "ok": ok})
            self.line(f"<=== [{stage}] {'ok' if ok else 'FAILED'} in {seconds:.1f}s")
            self.hooks.on_stage(StageEvent(self.build_id, stage, network, seconds, ok))
            log.info("stage.end", build_id=self.build_id, stage=stage, seconds=seconds, ok=ok)


def log_path(settings: Settings, build_id: str) -> Path:
    """Where a build's log is written while it runs (the store keeps it once it has ended)."""
    return settings.home / "logs" / f"{build_id}.log"


def run_build(
    request: BuildRequest | Prepared,
    settings: Settings,
    executor: Executor,
    on_wheel: Callable[[Built], T],
    *,
    build_id: str | None = None,
    hooks: Hooks | None = None,
    store: WheelStore | None = None,
    requested_by: Requester | None = None,
) -> T:
    """Build `request` and hand the result to `on_wheel` before the workspace goes away.

    A plain `BuildRequest` is prepared here (see `service.prepare`); the fetched source must
    key as prepared (a git ref is keyed by the commit it resolved to). With a `store`, the
    project's compiler cache is brought from it before the build and saved back to it once
    `on_wheel` (the publish) succeeded; `requested_by` is who asked (an upload's compiler
    cache is its requester's).
    """
    build_id = build_id or new_build_id()
    hooks = hooks or Hooks()
    prepared = (
        prepare(request, settings, executor=executor.name)
        if isinstance(request, BuildRequest)
        else request
    )
    deadline = time.monotonic() + (prepared.request.timeout_s or settings.build_timeout_s)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")  # the provenance's startedOn
    workspace = settings.work_dir / build_id
    kept = settings.work_dir / f"{build_id}.kept"  # outside every container's reach
    cache_dir = settings.work_dir / f"{build_id}.ccache"  # the build stage's alone
    log_at = log_path(settings, build_id)
    log_at.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_at.open("w", encoding="utf-8", buffering=1)
    for left in (workspace, cache_dir):  # what a lost earlier delivery left
        shutil.rmtree(left, ignore_errors=True)
    workspace.mkdir(parents=True)
    redact = Redactor.for_service(settings)
    rec = _Recorder(build_id, log_file, hooks, redact, settings.limits.max_log_bytes)
    structlog.contextvars.bind_contextvars(build_id=build_id)
    try:
        limits = Limits(settings.max_archive_members, settings.max_archive_bytes)
        fetched, pinned = rec.run(
            "fetch", True, lambda: _fetch(prepared, settings, workspace, limits)
        )
        key, environment = pinned.key, pinned.environment
        rec.line(f"request key {key}, environment {environment}")
        cache = CacheUse.decide(fetched, settings, executor, store, requested_by)
        inputs = cache.prepare(rec, fetched, workspace, cache_dir, settings)
        ctx = StageContext(
            build_id,
            deadline,
            log=rec.line,
            cancelled=hooks.cancelled,
            clean=redact,
            max_line_chars=settings.limits.max_log_line_chars,
        )
        with executor.session(
            fetched.request, workspace, rec.line, compiler_cache=cache.folder(cache_dir)
        ) as session:
            root = fetched.root.relative_to(workspace).as_posix()
            plan = make_plan(
                fetched.request, session.layout, session.machine, source_root=root, inputs=inputs
            )
            if (recipe := fetched.request.recipe) is not None:
                given = ", ".join(f"{k}={plan.build_env[k]}" for k in sorted(plan.build_env))
                rec.line(f"recipe {recipe.name} ({recipe.origin}); build environment: {given}")
            results, wheel = _run_stages(rec, session, plan, ctx, workspace=workspace, kept=kept)
            image_facts = dict(session.facts) | {
                "cpus": session.machine.cpus,
                "memory_bytes": session.machine.memory_bytes,
            }
        ids = {"build_id": build_id, "request_key": key, "environment": environment}
        manifest = build_facts(
            fetched, ids=ids, image=image_facts, build_env=plan.build_env, results=results
        )
        manifest |= {
            "started_at": started_at,
            "source_date_epoch": inputs.source_date_epoch,
            "compiler_cache": cache.report(results.build["compiler_cache"], rec.line),
            "stages": list(rec.stages),
        }
        built = Built(
            build_id,
            fetched.request,
            key,
            environment,
            wheel,
            manifest,
            log_at,
            results,
            fetched.expected,
            inputs.source_date_epoch,
        )
        published = rec.run("publish", True, lambda: on_wheel(built))  # the worker, the store
        cache.save(rec, cache_dir, settings, manifest["compiler_cache"].get("counts"))
        return published
    finally:
        structlog.contextvars.unbind_contextvars("build_id")
        rec.close()
        shutil.rmtree(kept, ignore_errors=True)
        shutil.rmtree(cache_dir, ignore_errors=True)
        if not settings.keep_workspace:
            shutil.rmtree(workspace, ignore_errors=True)


def _fetch(
    prepared: Prepared, settings: Settings, workspace: Path, limits: Limits
) -> tuple[Fetched, Prepared]:
    """The source, fetched as prepared: a git ref resolved (and keyed by its commit) unless the
    caller did so already; anything else must key as prepared."""
    pinned = prepared.pinned(pin_source(prepared.request, settings))
    egress = EgressPolicy.from_settings(settings)
    fetched = fetch(pinned.request, workspace, limits, git_for(settings), egress)
    pinned.check_fetched(fetched.request)
    return fetched, pinned


def _run_stages(
    rec: _Recorder,
    session: ExecSession,
    plan: BuildPlan,
    ctx: StageContext,
    *,
    workspace: Path,
    kept: Path,
) -> tuple[StageResults, Path]:
    """Run the planned stages in order, each given what the earlier ones found; the wheel is
    taken out right after the build, before verify runs the package's code again."""
    run = partial(_run_stage, rec, session, ctx=ctx)
    runtime = run(plan.runtime)
    build_deps = run(plan.build_deps)
    requires = run(plan.requires)
    requires_install = run(with_requires(plan.requires_install, requires["dynamic"]))
    build = run(plan.build)
    wheel = take_wheel(workspace, build["wheel"], kept)
    verify = run(with_wheel(plan.verify, f"{session.layout.outdir}/{wheel.name}"))
    results = StageResults(
        runtime=cast(RuntimeResult, runtime),
        build_deps=cast(BuildDepsResult, build_deps),
        requires=cast(RequiresResult, requires),
        requires_install=cast(RequiresInstallResult, requires_install),
        build=cast(WheelResult, build),
        verify=cast(VerifyResult, verify),
    )
    return results, wheel


def _run_stage(
    rec: _Recorder, session: ExecSession, stage: StagePlan[Any], *, ctx: StageContext
) -> dict[str, Any]:
    """Run one stage (its result checked against the contract by the executor). A stage the
    plan lets retry online (a backend that cannot say its requirements offline) is asked
    again with the network on, still without the shared cache, and the result says so."""
    try:
        return rec.run(stage.name, stage.network, partial(session.run, stage, ctx))
    except BuildFailedError as exc:
        if not stage.retry_online or stage.network or isinstance(exc, DeadlineExceededError):
            raise
    rec.line(f"--- [{stage.name}] failed offline; asking the backend again with the network on")
    online = stage.with_network()
    return {**rec.run(online.name, True, partial(session.run, online, ctx)), "network": True}


def take_wheel(workspace: Path, name: object, kept: Path) -> Path:
    """The wheel the build stage names, copied out of the workspace the build could write.

    The name comes from the build's result file, so it must be a plain `.whl` file name, and the
    file a regular file (a link made by the build could point anywhere on this host). The copy is
    what gets verified against, checked and published.
    """
    if not isinstance(name, str) or "/" in name or "\\" in name or not name.endswith(".whl"):
        raise InvalidArtifactError(f"the build named no plain wheel file: {name!r}")
    if name.startswith("."):
        raise InvalidArtifactError(f"the build named no plain wheel file: {name!r}")
    kept.mkdir(mode=0o700, exist_ok=True)
    try:
        out = os.open(workspace / "out", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise InvalidArtifactError(f"the build's out folder cannot be read: {exc}") from None
    try:
        stream = open_regular(Path(f"/proc/self/fd/{out}") / name)
    finally:
        os.close(out)
    if stream is None:
        raise InvalidArtifactError(f"the built wheel {name!r} is missing or not a regular file")
    with stream, (kept / name).open("wb") as target:
        shutil.copyfileobj(stream, target)
    return kept / name
