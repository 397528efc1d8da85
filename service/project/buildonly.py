"""Build-only dependencies that have no wheel for the target: nodes of the graph, built first.

A package's build installs its runtime (its extra build dependencies) before its backend is
asked anything, and that stage installs wheels only. A package named only there (never
installed by the project itself, so not in its lock) that has no wheel for the target cannot be
installed: it must be built here first, like any node, and the build that needs it comes after
it. Which requirement has no wheel is asked of uv (`Probe`: building forbidden, as every lock
here is); where its sdist lies, too (`Locate`): the same rule as for a locked package. Pure
but for those two.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.errors import InvalidRequestError
from service.project.plan import BuildNode, ProjectPlan, generations
from service.project.settings import ProjectBuildSettings

#: a build's runtime requirements -> the pin (`name==version`) uv cannot install them without
#: building, or None when wheels alone install them
Probe = Callable[[tuple[str, ...]], str | None]
#: a pin -> the URL of its sdist and its sha256 (None: none recorded), as uv resolves it
Locate = Callable[[str], tuple[str, str | None]]


def with_build_only(
    plan: ProjectPlan,
    settings: ProjectBuildSettings,
    *,
    locked: Mapping[str, str],
    probe: Probe,
    locate: Locate,
    limit: int,
) -> ProjectPlan:
    """`plan` with a node for each package a build's runtime needs that has no wheel for the
    target, before the builds that need it (and so on for its own runtime); `locked`: the
    versions the project installs (by name), whose pins need no probe. A cycle is refused, as
    in every plan; more than `limit` nodes added, too."""
    nodes = dict(plan.nodes)
    probed: dict[tuple[str, ...], str | None] = {}
    queue = deque(sorted(nodes))
    added = 0
    while queue:
        name = queue.popleft()
        while True:
            node = nodes[name]
            outside = _outside(node, nodes, locked)
            if not outside:
                break
            if outside not in probed:
                probed[outside] = probe(outside)
            found = probed[outside]
            if found is None:
                break
            needed, _, version = found.partition("==")
            needed = canonicalize_name(needed)
            if needed == name:
                raise InvalidRequestError(f"{name} needs itself to build")
            if needed not in nodes:
                added += 1
                if added > limit:
                    raise InvalidRequestError(
                        f"more than {limit} build-only packages must be built for {name}"
                    )
                url, sha256 = locate(f"{needed}=={version}")
                nodes[needed] = BuildNode(
                    name=needed,
                    version=version,
                    reason=f"the build of {name} needs it; no wheel for {plan.target.label}",
                    runtime=_own_runtime(needed, settings, nodes, locked),
                    after=(),
                    sdist_url=url,
                    sdist_sha256=sha256,
                )
                nodes[needed] = _with_after(nodes[needed], nodes)
                queue.append(needed)
            nodes[name] = _needing(node, nodes[needed])
            if needed not in {canonicalize_name(Requirement(r).name) for r in outside}:
                break  # a dependency of a runtime requirement: built first, nothing to pin
    if len(nodes) == len(plan.nodes):
        return plan
    return ProjectPlan(
        target=plan.target,
        nodes=nodes,
        generations=generations(nodes),
        installable=plan.installable,
    )


def _outside(
    node: BuildNode, nodes: Mapping[str, BuildNode], locked: Mapping[str, str]
) -> tuple[str, ...]:
    """The requirements of `node`'s runtime that neither a node nor the project's lock gives."""
    found = []
    for text in node.runtime:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name in nodes:
            continue
        version = locked.get(name)
        if version is not None and req.specifier.contains(version, prereleases=True):
            continue  # the project installs it on this target: a wheel the lock has
        found.append(text)
    return tuple(sorted(found))


def _own_runtime(
    name: str,
    settings: ProjectBuildSettings,
    nodes: Mapping[str, BuildNode],
    locked: Mapping[str, str],
) -> tuple[str, ...]:
    runtime = []
    for extra in settings.extra_build_dependencies.get(name, ()):
        built = nodes.get(extra.name)
        if built is not None:
            runtime.append(built.pin)
        elif extra.match_runtime and extra.name in locked:
            runtime.append(f"{extra.name}=={locked[extra.name]}")
        else:
            runtime.append(extra.requirement)
    return tuple(runtime)


def _with_after(node: BuildNode, nodes: Mapping[str, BuildNode]) -> BuildNode:
    after = {canonicalize_name(Requirement(r).name) for r in node.runtime} & set(nodes)
    return replace(node, after=tuple(sorted(after - {node.name})))


def _needing(node: BuildNode, first: BuildNode) -> BuildNode:
    """`node`, built after `first`: its runtime's requirement of it pinned to that version."""
    runtime = []
    for text in node.runtime:
        req = Requirement(text)
        same = canonicalize_name(req.name) == first.name
        runtime.append(first.pin + (f" ; {req.marker}" if req.marker else "") if same else text)
    return replace(node, runtime=tuple(runtime), after=tuple(sorted({*node.after, first.name})))
