"""A whole project built for one environment: lock (a fixpoint where uv must wait for a build),
plan, then the plan's nodes, each once it is ready, through the ordinary build submission.

Without a uv.lock, uv locks with building forbidden and our environment's page in front; a
package it cannot lock without building is built first (alone, as its own wave), then uv locks
again, each round a package further, at most `MAX_ROUNDS` times. With a uv.lock the versions are
decided already: the lock must match pyproject.toml, and only the plan is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import ValidationError

from service.config import Settings
from service.egress import EgressPolicy
from service.errors import InvalidRequestError
from service.jobs import JobBackend
from service.models import BuildRequest, RequirementSource
from service.project.buildonly import with_build_only
from service.project.environment import ProjectEnvironment
from service.project.files import read_pyproject
from service.project.inputs import InputLock
from service.project.lock import Lock, parse_lock
from service.project.plan import BuildNode, ProjectPlan, plan_project, reachable
from service.project.resolve import blocker_sdist, project_lock, runtime_blocker
from service.project.run import NodeProgress, ProjectProgress, ProjectRun
from service.project.settings import ProjectBuildSettings, project_build_settings
from service.submit import Submitted

MAX_ROUNDS = 20


@dataclass(frozen=True)
class ProjectResult:
    progress: ProjectProgress
    plan: ProjectPlan

    @property
    def built(self) -> list[str]:
        """Every package this project takes from our index (built now or found in the store)."""
        return [node.name for node in self.progress.built]


class ProjectBuild:
    """One project build; `submit` is `service.submit.submit` bound to a service's parts;
    `on_wave` sends a submitted wave to the workers; `before_lock` refreshes our index before
    uv or a wave's builds read it. `settings` and `egress`: the operator's settings (not the
    ones with the project's environment added, which only `submit` needs) and policy for uv;
    `pyproject` and `lock`: the project's files as prepared, parsed once (read here, bounded,
    when not given); `cancelled`: asked between polls, True once the build must stop."""

    def __init__(
        self,
        folder: Path,
        env: ProjectEnvironment,
        submit: Callable[[BuildRequest], Submitted],
        jobs: JobBackend,
        *,
        settings: Settings,
        egress: EgressPolicy,
        abi_pins: dict[str, str],
        on_change: Callable[[], object] | None = None,
        on_wave: Callable[[], object] | None = None,
        before_lock: Callable[[], object] | None = None,
        poll_s: float = 0.2,
        lock_input: Callable[[tuple[str, ...]], InputLock] | None = None,
        pyproject: Mapping[str, Any] | None = None,
        lock: Lock | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.folder = folder
        self._cancelled = cancelled
        self.env = env
        self.progress = ProjectProgress()
        self._submit = submit
        self._jobs = jobs
        self._settings = settings
        self._abi = abi_pins
        self._on_change = on_change
        self._on_wave = on_wave
        self._before_lock = before_lock or (lambda: None)
        self._poll_s = poll_s
        # a pylock.toml or requirements.txt (`lock_input`, given the packages built since uv
        # last looked): no pyproject, so no build settings but the environment's ABI pins
        self._lock_input = lock_input
        self._egress = egress
        self._pyproject: Mapping[str, Any] = {}
        self._locked = lock
        self._project = ProjectBuildSettings()
        self._sdists: dict[str, tuple[str, str | None]] = {}  # a blocker's, as uv resolved it
        if lock_input is not None:  # a requirements.txt's or pylock's indexes, as [tool.uv]
            self._pyproject = pyproject or {}
        else:
            where = folder / "pyproject.toml"
            self._pyproject = read_pyproject(where, settings) if pyproject is None else pyproject
            self._project = project_build_settings(self._pyproject, where=str(where))

    def run(self) -> ProjectResult:
        if self._lock_input is not None:
            lock = self._input_lock(self._lock_input)
        else:
            text = self._lock()
            lock = self._locked or parse_lock(text, where=str(self.folder / "uv.lock"))
        target = self.env.spec.target
        plan = plan_project(lock, self._project, target, abi_pins=tuple(self._abi))
        locked = {name: p.version for name, p in reachable(lock, target).items()}
        plan = with_build_only(
            plan,
            self._project,
            locked=locked,
            probe=self._probe,
            locate=self._locate,
            limit=MAX_ROUNDS,
        )
        self._check_size(plan)
        self._note_served(lock, plan)
        self._run(plan)
        return ProjectResult(self.progress, plan)

    def _lock(self) -> str:
        has_lock = (self.folder / "uv.lock").is_file()
        for _ in range(MAX_ROUNDS):
            if not has_lock:  # uv asks our index: it must answer, and with what is there now
                self._before_lock()
            locked = project_lock(
                self.folder,
                self._settings,
                egress=self._egress,
                pyproject=self._pyproject,
                index=None if has_lock else self.env.index_url,
                fresh=self._fresh(),
            )
            if locked.text is not None:
                return locked.text
            self._build_first(str(locked.blocked_by), chain=())
        raise InvalidRequestError(
            f"uv could not lock the project after building {MAX_ROUNDS} packages one by one"
        )

    def _input_lock(self, lock_input: Callable[[tuple[str, ...]], InputLock]) -> Lock:
        """The lock of a pylock.toml or requirements.txt; for the latter a fixpoint as in
        `_lock`: what uv cannot resolve without building is built first."""
        for _ in range(MAX_ROUNDS):
            self._before_lock()
            found = lock_input(self._fresh())
            if found.lock is not None:
                return found.lock
            self._build_first(str(found.blocked_by), chain=())
        raise InvalidRequestError(
            f"uv could not resolve the requirements after building {MAX_ROUNDS} packages"
        )

    def _build_first(self, pin: str, *, chain: tuple[str, ...]) -> None:
        """Build `pin`, which uv cannot lock without, after what its own build's runtime
        needs built (asked of uv the same way); each a wave of its own. `chain`: the builds
        waiting for this one, where a cycle shows."""
        name = canonicalize_name(pin.split("==", maxsplit=1)[0])
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name) :], name))
            raise InvalidRequestError(
                f"the build graph has a cycle: {cycle} (each build needs the one after it "
                "installed); none of it can be built"
            )
        if name in self.progress.nodes:
            raise InvalidRequestError(
                f"uv still cannot resolve without building {pin}, though it was built for "
                f"{self.env.name}: check that {self.env.index_url} serves it"
            )
        if len(chain) > MAX_ROUNDS:
            raise InvalidRequestError(f"more than {MAX_ROUNDS} builds must come before {pin}")
        node = self._blocker_node(pin)
        while node.runtime:
            self._before_lock()
            needed = runtime_blocker(
                self.folder / "pyproject.toml",
                node.runtime,
                self._settings,
                egress=self._egress,
                data=self._pyproject,
                python=self.env.spec.target.python,
                index=self.env.index_url,
                fresh=self._fresh(),
            )
            if needed is None:
                break
            self._build_first(needed, chain=(*chain, name))
            node = self._blocker_node(pin)
        done = self._run(_one_node_plan(node, self.env)).nodes[node.name]
        if not done.ok:
            raise InvalidRequestError(
                f"uv cannot resolve the project without {node.pin}, and its build "
                f"{done.error or 'failed'}"
            )

    def _check_size(self, plan: ProjectPlan) -> None:
        """Refuse a plan with more packages to build than `limits.max_project_packages`, before
        any of them is submitted: one project build does not fill the queue."""
        limit = self._settings.limits.max_project_packages
        count = len(plan.nodes) + len(self.progress.nodes)
        if count > limit:
            raise InvalidRequestError(
                f"the project has {count} packages to build, more than this service's limit "
                f"of {limit} (limits.max_project_packages)"
            )

    def _note_served(self, lock: Lock, plan: ProjectPlan) -> None:
        """Packages the lock takes from our index (built by an earlier run): in the result."""
        ours = self.env.index_url.rstrip("/")
        files = f"{ours.rsplit('/simple/', 1)[0]}/files/"  # a pylock names files, not indexes
        for name, package in sorted(reachable(lock, self.env.spec.target).items()):
            served = (package.registry or "").rstrip("/") == ours or package.source.get(
                "url", ""
            ).startswith(files)
            if served and name not in self.progress.nodes and name not in plan.nodes:
                self.progress.nodes[name] = NodeProgress(
                    name, package.version, 0, state="cached", note="on our index already"
                )

    def _wave_ready(self, builds: int) -> None:
        """A wave is submitted: where it has builds to run, the index shows what the waves
        before it published, then the wave goes to the workers (its builds install those)."""
        if builds:
            self._before_lock()
        if self._on_wave is not None:
            self._on_wave()

    def _fresh(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.progress.built)

    def _blocker_node(self, pin: str) -> BuildNode:
        """The package uv must have built before it can lock; its runtime from the project."""
        name, _, version = pin.partition("==")
        name = canonicalize_name(name)
        runtime = _runtime(name, self._project, self._abi, self.progress)
        after = tuple(
            r
            for r in (canonicalize_name(Requirement(p).name) for p in runtime)
            if r in self.progress.nodes
        )
        url, sha256 = self._locate(f"{name}=={version}")
        why = "uv cannot lock it without building it"
        return BuildNode(name, version, why, runtime, after, sdist_url=url, sdist_sha256=sha256)

    def _locate(self, pin: str) -> tuple[str, str | None]:
        """Where uv resolves the sdist of `pin`, which no lock of ours names, from."""
        found = self._sdists.get(pin)
        if found is None:
            found = self._sdists[pin] = blocker_sdist(
                self.folder / "pyproject.toml",
                pin,
                self._settings,
                egress=self._egress,
                python=self.env.spec.target.python,
                data=self._pyproject,
            )
        return found

    def _probe(self, runtime: tuple[str, ...]) -> str | None:
        """The package uv cannot install `runtime` (a build's) without building first."""
        self._before_lock()
        return runtime_blocker(
            self.folder / "pyproject.toml",
            runtime,
            self._settings,
            egress=self._egress,
            data=self._pyproject,
            python=self.env.spec.target.python,
            index=self.env.index_url,
            fresh=self._fresh(),
        )

    def _run(self, plan: ProjectPlan) -> ProjectProgress:
        run = ProjectRun(
            plan,
            self._submit_node,
            self._jobs,
            progress=self.progress,
            on_change=self._on_change,
            on_wave=self._wave_ready,
            poll_s=self._poll_s,
            cancelled=self._cancelled,
        )
        return run.run()

    def _submit_node(self, node: BuildNode) -> Submitted:
        return self._submit(node_request(node, self.env))


def node_request(node: BuildNode, env: ProjectEnvironment) -> BuildRequest:
    """The ordinary build request of one node: the sdist its lock names (by URL, its sha256
    checked where the lock has one; a node without one fails, naming it), in the project's
    environment, its runtime the environment's plus what its own build needs besides."""
    pinned = {canonicalize_name(Requirement(p).name): p for p in env.spec.runtime}
    added: list[str] = []
    for text in node.runtime:
        req = Requirement(text)
        own = pinned.get(canonicalize_name(req.name))
        if own is None:
            added.append(text)
        elif str(req.specifier) and not Requirement(own).specifier.contains(
            next(iter(req.specifier)).version, prereleases=True
        ):
            raise InvalidRequestError(
                f"the build of {node.name} needs {text}, but environment {env.name} pins {own}"
            )
    if node.sdist_url is None:
        raise InvalidRequestError(
            f"the lock names no sdist URL for {node.pin}: it is built only from where the "
            "lock says (an http(s) URL), never looked up by name"
        )
    try:
        source = RequirementSource(
            requirement=node.pin, url=node.sdist_url, sha256=node.sdist_sha256
        )
    except ValidationError as exc:
        why = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise InvalidRequestError(f"the lock's sdist for {node.pin}: {why}") from None
    fields: dict[str, object] = {"source": source, "environment": env.name}
    if added:
        fields["runtime"] = tuple(added)
    return BuildRequest.model_validate(fields)


def _runtime(
    name: str,
    project: ProjectBuildSettings,
    abi: dict[str, str],
    progress: ProjectProgress,
) -> tuple[str, ...]:
    runtime: list[str] = []
    for extra in project.extra_build_dependencies.get(name, ()):
        built = progress.nodes.get(extra.name)
        if built is not None:
            runtime.append(f"{built.name}=={built.version}")
        elif extra.match_runtime and extra.name in abi:
            runtime.append(f"{extra.name}=={abi[extra.name]}")
        else:
            runtime.append(extra.requirement)
    return tuple(runtime)


def _one_node_plan(node: BuildNode, env: ProjectEnvironment) -> ProjectPlan:
    return ProjectPlan(
        target=env.spec.target, nodes={node.name: node}, generations=((node.name,),), installable=()
    )
