"""A project's lock and settings -> the graph of packages to build for one target. Pure.

A package is built when the target can install none of its locked wheels (sdist only, or wheels
for other Pythons or platforms) or when the project names it. Its runtime (what is installed
before its backend is asked anything) is its extra build dependencies, with `match-runtime`
ones (and ABI-critical ones such as torch) pinned to the locked version. A package whose
runtime holds another package being built comes after it; a cycle is refused before anything
is built, naming it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.errors import InvalidRequestError
from service.models import Target
from service.project.compat import marker_environment, target_tags
from service.project.lock import Dependency, Lock, LockedPackage, wheel_tags
from service.project.settings import ProjectBuildSettings


@dataclass(frozen=True)
class BuildNode:
    name: str
    version: str
    reason: str
    runtime: tuple[str, ...]
    after: tuple[str, ...]
    #: the sdist the lock names (its URL and sha256): what is fetched, and from nowhere else
    sdist_url: str | None = None
    sdist_sha256: str | None = None

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class ProjectPlan:
    target: Target
    nodes: Mapping[str, BuildNode]
    generations: tuple[tuple[str, ...], ...]
    installable: tuple[str, ...]

    @property
    def order(self) -> list[str]:
        return [name for generation in self.generations for name in generation]


def plan_project(
    lock: Lock,
    settings: ProjectBuildSettings,
    target: Target,
    *,
    abi_pins: Iterable[str] = ("torch",),
) -> ProjectPlan:
    """The packages of `lock` that `target` needs built, in an order that builds each after
    the built packages its build installs."""
    needed = reachable(lock, target)
    tags = target_tags(target)
    abi: set[str] = {canonicalize_name(n) for n in abi_pins}
    unknown = sorted(settings.always_build - set(needed))
    if unknown:
        raise InvalidRequestError(
            f"[tool.wheelwright] build names {', '.join(unknown)}, which the lock does not "
            f"install for {target.label}"
        )
    reasons: dict[str, str] = {}
    installable: list[str] = []
    for name in sorted(needed):
        package = needed[name]
        if package.is_local:
            continue
        reason = _why_build(package, tags, target)
        if name in settings.always_build:
            reason = "named in [tool.wheelwright] build" + (f"; {reason}" if reason else "")
        if reason is None:
            installable.append(name)
            continue
        if package.sdist is None:
            raise InvalidRequestError(
                f"{package.pin} has no wheel for {target.label} and no sdist to build it from"
            )
        reasons[name] = reason
    nodes = {
        name: _node(
            needed[name],
            reasons[name],
            settings=settings,
            needed=needed,
            abi=abi,
            building=reasons,
        )
        for name in reasons
    }
    return ProjectPlan(
        target=target,
        nodes=nodes,
        generations=generations(nodes),
        installable=tuple(installable),
    )


def reachable(lock: Lock, target: Target) -> dict[str, LockedPackage]:
    """The packages the project installs on `target`, by name: its dependencies and dev groups
    (as `uv sync` does by default), followed through the lock with the markers evaluated for
    the target (which also picks one version where uv forked)."""
    env = marker_environment(target)
    roots = lock.roots
    if not roots:
        raise InvalidRequestError("the lock has no project package (source virtual or editable)")
    found: dict[str, LockedPackage] = {root.name: root for root in roots}
    done: set[tuple[str, str, tuple[str, ...]]] = set()
    queue: deque[Dependency] = deque()
    for root in roots:
        queue.extend(root.dependencies)
        for group in root.dev.values():
            queue.extend(group)
    while queue:
        dep = queue.popleft()
        if not _applies(dep.marker, env):
            continue
        package = lock.resolve(dep)
        if package is None:
            continue  # not locked for this fork, or a dependency uv left out
        seen = found.setdefault(dep.name, package)
        if seen.version != package.version:
            raise InvalidRequestError(
                f"the lock installs both {seen.pin} and {package.pin} on {target.label}"
            )
        key = (package.name, package.version, dep.extras)
        if key in done:
            continue
        done.add(key)
        queue.extend(package.dependencies)
        for extra in dep.extras:
            queue.extend(package.optional.get(extra, ()))
    return found


def _applies(marker: str | None, env: dict[str, str]) -> bool:
    if not marker:
        return True
    try:
        return Marker(marker).evaluate(env)
    except InvalidMarker:
        return True  # unknown to us: keep it, a wheel too many is planned, never one too few


def _why_build(package: LockedPackage, tags: frozenset[object], target: Target) -> str | None:
    if any(wheel_tags(w) & tags for w in package.wheels):
        return None
    if not package.wheels:
        return "sdist only"
    sample = ", ".join(sorted({str(t) for w in package.wheels for t in wheel_tags(w)})[:3])
    return f"no wheel for {target.label} (wheels for {sample}, ...)"


def _node(
    package: LockedPackage,
    reason: str,
    *,
    settings: ProjectBuildSettings,
    needed: Mapping[str, LockedPackage],
    abi: set[str],
    building: Mapping[str, str],
) -> BuildNode:
    runtime: list[str] = []
    for extra in settings.extra_build_dependencies.get(package.name, ()):
        name = extra.name
        if extra.match_runtime or name in abi or name in building:  # the locked version
            if name not in needed:
                raise InvalidRequestError(
                    f"the build of {package.name} must match the runtime's {name}, but the "
                    f"project does not install {name} on this target"
                )
            marker = Requirement(extra.requirement).marker
            suffix = f" ; {marker}" if marker else ""
            runtime.append(f"{needed[name].pin}{suffix}")
        else:
            runtime.append(extra.requirement)
    after = sorted({Requirement(r).name for r in runtime} & set(building) - {package.name})
    return BuildNode(
        name=package.name,
        version=package.version,
        reason=reason,
        runtime=tuple(runtime),
        after=tuple(canonicalize_name(a) for a in after),
        sdist_url=package.sdist_url,
        sdist_sha256=package.sdist_sha256,
    )


def generations(nodes: Mapping[str, BuildNode]) -> tuple[tuple[str, ...], ...]:
    """Build waves: every node of one wave can build at once, after the waves before it."""
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for node in nodes.values():
        sorter.add(node.name, *node.after)
        if node.name in node.after:
            raise InvalidRequestError(f"{node.name} needs itself to build")
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = exc.args[1] if len(exc.args) > 1 else []
        raise InvalidRequestError(
            f"the build graph has a cycle: {' -> '.join(cycle)}; none of it can be built"
        ) from None
    waves: list[tuple[str, ...]] = []
    while sorter.is_active():
        ready = tuple(sorted(sorter.get_ready()))
        waves.append(ready)
        sorter.done(*ready)
    return tuple(waves)
