"""A project build run by the service: `POST /v1/projects` starts one in a thread of the API
process, with the app's own store, job state and dispatcher (its packages go to the workers as
ordinary builds). Its state is JSON in the store (`layout.project_build_key`), rewritten as it
changes, so `GET /v1/projects/{id}` reads it from there. Whatever happens in the thread, the
state ends "succeeded" or "failed" with the cause: never left "running".
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from service import layout
from service.config import Settings
from service.dispatch import Dispatcher
from service.egress import EgressPolicy
from service.errors import BuildNotFoundError, BusyError, InvalidRequestError, WheelwrightError
from service.jobs import JobBackend
from service.models import BuildRequest, Requester, Target
from service.project.build import ProjectBuild
from service.project.inputs import InputKind
from service.project.prepared import PreparedProject, prepare_project
from service.project.slots import ProjectSlots
from service.project.uvconfig import uv_config_text
from service.project.wave import WaveDispatcher
from service.shares import share_of
from service.store import WheelStore
from service.submit import Submitted, submit

log = structlog.get_logger("wheelwright.project")

ProjectState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
#: How often a project build asks the store whether it was cancelled.
CANCEL_POLL_S = 1.0
#: How often a running project build rewrites its state, and after how long without that a
#: reader takes it as lost (the API process that ran it stopped).
HEARTBEAT_S = 15.0
LOST_AFTER_S = 120.0


@dataclass(frozen=True)
class GitProject:
    """A project at `url`, `ref` (checked by `service.gitpolicy` before this is made)."""

    url: str
    ref: str
    commit: str | None = None  # a pushed commit: built as it is, the ref not resolved
    subdirectory: str | None = None  # where the project lies in the repository


@dataclass(frozen=True)
class ServedParts:
    """The service's parts a project build runs with, and where its index is served."""

    settings: Settings
    store: WheelStore
    jobs: JobBackend
    dispatcher: Dispatcher
    base_url: str
    refresh_index: Callable[[], object]
    requested_by: Requester | None = None
    #: the process's limit on project builds at once; None: no limit (tests of one build)
    slots: ProjectSlots | None = None


def new_project_build_id() -> str:
    return uuid.uuid4().hex


def load_state(store: WheelStore, project_build_id: str) -> dict[str, object]:
    """The saved state of a project build; `BuildNotFoundError` for an unknown id."""
    try:
        key = layout.project_build_key(project_build_id)
    except InvalidRequestError:
        key = None
    if key is None or not store.exists(key):
        raise BuildNotFoundError(f"no project build {project_build_id!r}")
    state: dict[str, object] = json.loads(store.get(key))
    beat = state.get("heartbeat_at")
    lost = isinstance(beat, (int, float)) and time.time() - beat > LOST_AFTER_S
    if state.get("state") in ("queued", "running") and lost:
        state |= {
            "state": "failed",
            "lost": True,
            "error": f"lost: the service process running it stopped (no sign for "
            f"{LOST_AFTER_S:.0f} s); submit the project again",
            "finished_at": time.time(),
        }
        store.put(key, json.dumps(state, indent=2).encode(), content_type="application/json")
    return state


def request_cancel(store: WheelStore, project_build_id: str) -> dict[str, object]:
    """Ask a project build to stop: its queued packages are not built, its running builds
    cancelled; seen by the process running it within `CANCEL_POLL_S`. Its state as it is."""
    state = load_state(store, project_build_id)
    if state.get("state") in ("queued", "running"):
        store.put(layout.project_cancel_key(project_build_id), b"{}")
    return state


def without_paths(text: str, folder: Path, workdir: Path) -> str:
    """`text` with `folder/` taken out (a project's files by their names in the project) and
    any other path in `workdir` named `<project>`: a refusal tells no one the server's paths."""
    for root, name in ((folder, ""), (workdir, "<project>/")):
        for form in dict.fromkeys((str(root), str(root.resolve()))):
            text = text.replace(form + "/", name).replace(form, name.rstrip("/") or ".")
    return text


def prepare_for(
    folder: Path, parts: ServedParts, target: Target, environment: str | None
) -> PreparedProject:
    """The project in `folder` (pyproject.toml, else pylock.toml, else requirements.txt) made
    ready: refused with a clear error when it holds none or the environment is unknown."""
    if not any((folder / kind.value).is_file() for kind in InputKind):
        names = ", ".join(kind.value for kind in InputKind)
        raise InvalidRequestError(f"the project has none of {names} at its top folder")
    return prepare_project(
        folder, parts.settings, target, environment=environment, base_url=parts.base_url
    )


class ServedProjectBuild:
    """One project build of the service; `workdir` is its own folder, removed at the end."""

    def __init__(
        self,
        parts: ServedParts,
        *,
        target: Target,
        environment: str | None,
        workdir: Path,
        source: dict[str, object],
        folder: Path | None = None,
        git: GitProject | None = None,
        project_build_id: str | None = None,
    ) -> None:
        self.id = project_build_id or new_project_build_id()
        self.parts = parts
        self._target = target
        self._named = environment
        self._workdir = workdir
        self._folder = folder
        self._git = git
        self._source = dict(source)
        self._build: ProjectBuild | None = None
        self._saving = threading.Lock()
        self._ended = threading.Event()
        self._cancel_seen, self._cancel_asked = False, float("-inf")
        self.state: dict[str, object] = {
            "id": self.id,
            "state": "queued",
            "environment": environment,
            "index_url": None,
            "target": target.model_dump(exclude_none=True),
            "source": self._source,
            "packages": [],
            "failed": [],
            "uv_config": None,
            "error": None,
            "created_at": time.time(),
            "finished_at": None,
        }

    def cancelled(self) -> bool:
        """Whether someone asked this project build to stop (`request_cancel`, from any API
        process sharing the store); the store is asked at most every `CANCEL_POLL_S`."""
        now = time.monotonic()
        if not self._cancel_seen and now - self._cancel_asked >= CANCEL_POLL_S:
            self._cancel_asked = now
            self._cancel_seen = self.parts.store.exists(layout.project_cancel_key(self.id))
        return self._cancel_seen

    def save(self) -> None:
        """Write the state (the run thread on each change, the heartbeat between)."""
        with self._saving:
            if self._build is not None:
                self.state["packages"] = self._build.progress.as_json(time.monotonic())
            self.state["heartbeat_at"] = time.time()
            body = json.dumps(self.state, indent=2).encode()
            self.parts.store.put(
                layout.project_build_key(self.id), body, content_type="application/json"
            )

    def _heartbeat(self) -> None:
        while not self._ended.wait(HEARTBEAT_S):
            try:
                self.save()
            except Exception as exc:  # the store away for a moment: the next beat may pass
                log.warning("project.heartbeat_failed", error=str(exc))

    def start(self, *, ticket: int | None = None) -> threading.Thread:
        """Take a place in the line for a slot (`ProjectSlots.join`: `BusyError` only when the
        requester's own line is full), or use the `ticket` taken already; save the queued
        state, then run in a thread of this process, which waits in line for a slot of the
        requester's share and gives it back when it ends."""
        slots, who = self.parts.slots, share_of(self.parts.requested_by)
        holding = False
        if slots is not None and ticket is None:
            try:
                slots.take(who)  # a slot free and the share not full: no line to stand in
                holding = True
            except BusyError:
                ticket = slots.join(who, 1)[0]
        try:
            self.save()
            thread = threading.Thread(
                target=self._run_in_slot, args=(ticket,), name=f"project-{self.id}", daemon=True
            )
            thread.start()
        except BaseException:
            if slots is not None and holding:
                slots.give_back(who)
            elif slots is not None and ticket is not None:
                slots.leave(ticket)
            raise
        return thread

    def _run_in_slot(self, ticket: int | None) -> None:
        slots = self.parts.slots
        if slots is None:
            self.run()
            return
        if ticket is not None:
            beat = time.monotonic()
            while not slots.wait(ticket, CANCEL_POLL_S):
                if self.cancelled():  # out of the line: it never runs
                    slots.leave(ticket)
                    shutil.rmtree(self._workdir, ignore_errors=True)
                    self._end("cancelled", "cancelled while it waited for a slot")
                    return
                if time.monotonic() - beat >= HEARTBEAT_S:  # queued: its state says alive
                    beat = time.monotonic()
                    try:
                        self.save()
                    except Exception as exc:  # the store away for a moment: the next beat
                        log.warning("project.heartbeat_failed", error=str(exc))
        try:
            self.run()
        finally:
            slots.give_back(share_of(self.parts.requested_by))

    def run(self) -> None:
        """Run to the end; the folder is gone before the end is saved, so whoever sees the end
        sees nothing of the build left on the server."""
        bound = structlog.contextvars.bind_contextvars(project_build_id=self.id)
        beat = threading.Thread(target=self._heartbeat, name=f"beat-{self.id}", daemon=True)
        try:
            try:
                self.state["state"] = "running"
                self.save()
                beat.start()
                state, error = self._run()
            except Exception as exc:  # whatever broke, the project build ends with its cause
                state = "failed"
                known = isinstance(exc, WheelwrightError)
                error = self.public(str(exc) if known else f"{type(exc).__name__}: {exc}")
                log.warning("project.failed", error=error)
            finally:
                self._ended.set()
                if beat.is_alive():
                    beat.join()
                shutil.rmtree(self._workdir, ignore_errors=True)
            self._end(state, error)
        finally:
            structlog.contextvars.reset_contextvars(**bound)

    def public(self, text: str) -> str:
        """`text` without this server's paths: the project's files named as in the project,
        anything else of the build's own folder as `<project>`."""
        return without_paths(text, self._folder or self._workdir / "checkout", self._workdir)

    def _run(self) -> tuple[ProjectState, str | None]:
        folder = self._folder if self._folder is not None else self._checkout()
        ready = prepare_for(folder, self.parts, self._target, self._named)
        env, settings = ready.env, ready.settings
        self.state["environment"], self.state["index_url"] = env.name, env.index_url
        self.state["input"] = ready.given.kind.value
        wave = WaveDispatcher(self.parts.dispatcher, self.parts.jobs)

        def submit_one(request: BuildRequest) -> Submitted:
            parts = self.parts
            return submit(
                request, settings, parts.store, parts.jobs, wave, requested_by=parts.requested_by
            )

        self._build = ProjectBuild(
            ready.folder,
            env,
            submit_one,
            self.parts.jobs,
            settings=self.parts.settings,  # the operator's: uv's folders and limits
            egress=ready.egress,
            abi_pins=ready.abi_pins,
            on_change=self.save,
            on_wave=wave.flush,
            before_lock=self.parts.refresh_index,
            lock_input=ready.lock_input,
            pyproject=ready.pyproject,
            lock=ready.lock,
            cancelled=self.cancelled,
        )
        result = self._build.run()
        built = result.built
        config = uv_config_text(env.index_url, built, direct=ready.direct) if built else ""
        self.state["uv_config"] = config
        failed = [node.name for node in result.progress.failed]
        self.state["failed"] = failed
        if self.cancelled():
            stopped = [n.name for n in result.progress.nodes.values() if n.state == "cancelled"]
            return "cancelled", f"cancelled; not built: {', '.join(stopped) or 'none'}"
        if failed:
            return "failed", f"not built: {', '.join(failed)}"
        return "succeeded", None

    def _checkout(self) -> Path:
        from worker.git import Git  # the worker's hardened git, here only for a project's files

        assert self._git is not None  # noqa: S101  (made with a folder or a git source)
        settings = self.parts.settings
        git = Git(
            allow_file=settings.sources.allow_file_git,
            ca_bundle=settings.ca_bundle,
            egress=EgressPolicy.from_settings(settings),
        )
        commit = self._git.commit or git.resolve_ref(self._git.url, self._git.ref)
        self._source["commit"] = commit
        checkout = self._workdir / "checkout"
        git.checkout(self._git.url, commit, checkout)
        self.save()
        folder = (checkout / (self._git.subdirectory or ".")).resolve()
        if not folder.is_relative_to(checkout.resolve()) or not folder.is_dir():
            raise InvalidRequestError(
                f"subdirectory {self._git.subdirectory!r} is not a folder of the repository"
            )
        return folder

    def _end(self, state: ProjectState, error: str | None) -> None:
        self.state["state"], self.state["error"] = state, error
        self.state["finished_at"] = time.time()
        self.save()
        log.info("project.ended", state=state, error=error)
