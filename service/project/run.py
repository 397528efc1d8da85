"""A project's plan, built: each node the moment the nodes its build needs have ended.

Each node is submitted as any build request is (`service.submit.submit`, bound by the caller), so
the cache, single-flight, records, logs and the dashboard all apply. A node is submitted as soon
as every node its build needs has ended, whatever else still runs (readiness, not waves: one slow
build does not hold back an unrelated chain), and the nodes ready together go to the workers as
one group, so as many run at once as there are workers. A node whose
build needs a node that was not built is not submitted: it is reported "not built", naming the
package it waited for. The others still build and publish; publishing is the one moment a wheel
counts, so a failed build leaves nothing behind on the index.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import structlog

from service.errors import InvalidRequestError, WheelwrightError
from service.jobs import JobBackend
from service.project.plan import BuildNode, ProjectPlan
from service.submit import Submitted

log = structlog.get_logger("wheelwright.project")

NodeState = Literal[
    "waiting", "queued", "running", "built", "cached", "failed", "not built", "cancelled"
]
DONE: frozenset[str] = frozenset({"built", "cached"})
ENDED: frozenset[str] = DONE | {"failed", "not built", "cancelled"}


@dataclass
class NodeProgress:
    """One package of the project build, as the live table and the JSON answer show it."""

    name: str
    version: str
    wave: int
    state: NodeState = "waiting"
    stage: str | None = None
    build_id: str | None = None
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    wheel: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in DONE

    def seconds(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.finished if self.finished is not None else now) - self.started

    def as_json(self, now: float) -> dict[str, object]:
        seconds = self.seconds(now)
        return {
            "name": self.name,
            "version": self.version,
            "wave": self.wave,
            "state": self.state,
            "stage": self.stage,
            "build_id": self.build_id,
            "seconds": round(seconds, 3) if seconds is not None else None,
            "error": self.error,
            "wheel": self.wheel,
            "note": self.note,
        }


@dataclass
class ProjectProgress:
    """Every node's progress, in build order."""

    nodes: dict[str, NodeProgress] = field(default_factory=dict)

    @property
    def failed(self) -> list[NodeProgress]:
        return [n for n in self.nodes.values() if n.state in ("failed", "not built", "cancelled")]

    @property
    def built(self) -> list[NodeProgress]:
        return [n for n in self.nodes.values() if n.ok]

    @property
    def new(self) -> list[NodeProgress]:
        """The packages this run built (not found in the store or on our index)."""
        return [n for n in self.nodes.values() if n.state == "built"]

    def as_json(self, now: float) -> list[dict[str, object]]:
        return [node.as_json(now) for node in self.nodes.values()]


class ProjectRun:
    """Runs `plan`, each node once it is ready; `submit_node` turns a node into a submitted
    build; `on_wave` is called with how many builds the nodes ready together submitted (a
    `WaveDispatcher.flush`: they go to the workers as one group). `wave`: a node's depth."""

    def __init__(
        self,
        plan: ProjectPlan,
        submit_node: Callable[[BuildNode], Submitted],
        jobs: JobBackend,
        *,
        progress: ProjectProgress | None = None,
        poll_s: float = 0.2,
        on_change: Callable[[], object] | None = None,
        on_wave: Callable[[int], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.plan = plan
        self._submit = submit_node
        self._jobs = jobs
        self._poll_s = poll_s
        self._on_change = on_change or (lambda: None)
        self._on_wave = on_wave or (lambda builds: None)
        self._clock = clock
        self._cancelled = cancelled
        self._own: set[str] = set()  # the builds this run created (not joined): its to cancel
        self.progress = progress or ProjectProgress()
        first_wave = 1 + max((n.wave for n in self.progress.nodes.values()), default=0)
        for number, wave in enumerate(plan.generations, start=first_wave):
            for name in wave:
                node = plan.nodes[name]
                self.progress.nodes[name] = NodeProgress(node.name, node.version, number)

    def run(self) -> ProjectProgress:
        """Each node submitted the moment every node its build needs has ended (built, or
        found), whatever else still runs: no node waits for a wave it does not need."""
        pending = dict(self.plan.nodes)
        running: dict[str, str] = {}
        while pending or running:
            if self._cancelled():
                self._stop(pending, running)
                break
            ready = [
                name
                for name, node in sorted(pending.items())
                if not any(a in pending or a in running for a in node.after)
            ]
            submitted = 0
            for name in ready:
                build_id = self._start(pending.pop(name))
                if build_id is not None:
                    running[name] = build_id
                    submitted += 1
            if ready:
                self._on_wave(submitted)  # these are submitted: send their builds as one group
                self._on_change()
            if not running:
                if pending and not ready:  # never, in an acyclic plan: refuse, not spin
                    names = ", ".join(sorted(pending))
                    raise InvalidRequestError(f"the build graph has a cycle among {names}")
                continue
            self._wait_any(running)
        return self.progress

    def _start(self, node: BuildNode) -> str | None:
        """Submit `node`; its build id when a build runs, None when it ended already."""
        entry = self.progress.nodes[node.name]
        missing = [a for a in node.after if not self._ok(a)]
        if missing:
            entry.state = "not built"
            entry.error = f"not built: its build needs {', '.join(missing)}, which was not built"
            return None
        entry.started = self._clock()
        try:
            submitted = self._submit(node)
        except WheelwrightError as exc:
            self._end(entry, "failed", error=str(exc))
            return None
        if submitted.artifact is not None:
            entry.wheel = submitted.artifact.filename
            self._end(entry, "cached")
            return None
        if submitted.record is None:  # submit answers with an artifact or a record
            self._end(entry, "failed", error="the service returned neither a wheel nor a build")
            return None
        entry.build_id = submitted.record.id
        if submitted.created:
            self._own.add(submitted.record.id)
        entry.state = "queued"
        log.info("project.node_submitted", package=node.name, build_id=entry.build_id)
        return entry.build_id

    def _ok(self, name: str) -> bool:
        entry = self.progress.nodes.get(name)
        return entry is None or entry.ok  # a name outside this plan was built before it

    def _stop(self, pending: dict[str, BuildNode], running: dict[str, str]) -> None:
        """Cancelled: no node is queued any more, and every build still running is cancelled
        (a queued one at once) and waited for, so none is left behind."""
        for name in sorted(pending):
            self._end(self.progress.nodes[name], "cancelled", error="cancelled before it started")
        pending.clear()
        for name, build_id in list(running.items()):
            if build_id not in self._own:  # another's build this node joined: theirs to stop
                del running[name]
                self._end(self.progress.nodes[name], "cancelled", error="cancelled")
                continue
            try:
                self._jobs.cancel(build_id)
            except WheelwrightError:  # it ended meanwhile: nothing to stop
                continue
        self._on_change()
        while running:
            self._wait_any(running, stop_when_cancelled=False)

    def _wait_any(self, running: dict[str, str], *, stop_when_cancelled: bool = True) -> None:
        """Until at least one of `running`'s builds ends (each one that did leaves it), or
        the project build is cancelled."""
        while True:
            changed = ended = False
            for name, build_id in list(running.items()):
                entry = self.progress.nodes[name]
                record = self._jobs.get(build_id)
                stage = record.stages[-1].name if record.stages else None
                if record.state == "running" and (entry.state, entry.stage) != ("running", stage):
                    entry.state, entry.stage, changed = "running", stage, True
                if not record.terminal:
                    continue
                del running[name]
                changed = ended = True
                if record.state == "succeeded":
                    wheel = (record.artifact or {}).get("filename")
                    entry.wheel = str(wheel) if wheel else None
                    self._end(entry, "built")
                elif record.state == "cancelled":
                    self._end(entry, "cancelled", error="cancelled while it ran")
                else:
                    where = f" in stage {record.error_stage}" if record.error_stage else ""
                    self._end(entry, "failed", error=f"failed{where}: {record.error}")
            if changed:
                self._on_change()
            if ended or (stop_when_cancelled and self._cancelled()):
                return
            time.sleep(self._poll_s)

    def _end(self, entry: NodeProgress, state: NodeState, *, error: str | None = None) -> None:
        entry.state, entry.error, entry.finished = state, error, self._clock()
        if entry.started is None:
            entry.started = entry.finished
        log.info("project.node_ended", package=entry.name, state=state, build_id=entry.build_id)
