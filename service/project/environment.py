"""The one build environment a project's packages are built in and served from.

Every package a project build makes lands on one index page, so one `[[tool.uv.index]]` serves
them all and a later package's runtime installs the earlier ones from it. The environment is a
named one of the config file (`--environment`), or one derived from the target, the project's
ABI pins (the torch it locks) and its indexes, named like any derived environment
(`cpu-py311-torch2.13.0-1a2b3c4d`). Either way the environment's own page comes first among the
extra indexes, and its runtime holds the ABI pins; a package's build adds only what its own
build needs (earlier packages of the project) to that runtime.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from service.config import Settings
from service.errors import InvalidRequestError
from service.index_config import index_url
from service.keys import environment_name, image_ref
from service.models import (
    BuildRequest,
    EnvironmentSpec,
    IndexSettings,
    RequirementSource,
    Target,
)
from service.project.files import read_pyproject
from service.project.lock import Lock
from service.project.plan import reachable


@dataclass(frozen=True)
class ProjectEnvironment:
    name: str
    spec: EnvironmentSpec
    index_url: str

    def settings(self, settings: Settings) -> Settings:
        """`settings` with this environment declared (what the builds are submitted with)."""
        environments = {**settings.environments, self.name: self.spec}
        return settings.model_copy(update={"environments": environments})


def project_environment(
    settings: Settings,
    pyproject: Path,
    *,
    target: Target,
    environment: str | None,
    base_url: str,
    abi_pins: Mapping[str, str],
    data: Mapping[str, Any] | None = None,
) -> ProjectEnvironment:
    """The environment for a project: `environment` if named (its target is `target`), else
    one derived from `target`. `data`: the project's parsed pyproject.toml (read once, where it
    was prepared), or its settings where `pyproject` is another file (a requirements.txt's
    indexes as a `[tool.uv]` table); read here (bounded) only when not given."""
    data = read_pyproject(pyproject, settings) if data is None else data
    if environment is not None:
        spec = settings.environments.get(environment)
        if spec is None:
            known = ", ".join(sorted(settings.environments)) or "none are configured"
            raise InvalidRequestError(f"unknown environment {environment!r} (known: {known})")
        name = environment
    else:
        runtime = tuple(f"{n}=={v}" for n, v in sorted(abi_pins.items()))
        index = project_index(data, settings, ours=base_url)
        spec = EnvironmentSpec(target=target, runtime=runtime, index=index)
        probe = BuildRequest(
            source=RequirementSource(requirement="project==0"),
            target=target,
            runtime=runtime,
            index=spec.index,
        )
        image = image_ref(target, settings.executor, host_packages=settings.host.inherit_packages)
        name = environment_name(probe, image)
    check_python(data, spec.target, pyproject)
    url = index_url(base_url, name)
    index = spec.index.model_copy(
        update={"extra_index_urls": (url, *(u for u in spec.index.extra_index_urls if u != url))}
    )
    return ProjectEnvironment(name, spec.model_copy(update={"index": index}), url)


def project_index(data: Mapping[str, Any], settings: Settings, *, ours: str) -> IndexSettings:
    """The indexes the project names (`[[tool.uv.index]]`, `index-url`, `extra-index-url`,
    `find-links`, `no-index`) over the service's own; checked by the allow-lists at submit.
    Our own pages on the service at `ours` (what `--write` added) are left out: the
    environment is the same before and after the project points at it."""
    uv = data.get("tool", {}).get("uv", {})
    own = f"{ours.rstrip('/')}/simple/"
    default = settings.index.index_url
    extras: list[str] = []
    for entry in uv.get("index", []):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("url"), str):
            raise InvalidRequestError("pyproject.toml: each [[tool.uv.index]] needs a url")
        if entry["url"].startswith(own):
            continue
        if entry.get("default"):
            default = entry["url"]
        else:
            extras.append(entry["url"])
    default = str(uv.get("index-url", default))
    extras += [str(u) for u in uv.get("extra-index-url", []) if not str(u).startswith(own)]
    links = [str(u) for u in uv.get("find-links", [])]
    try:
        return IndexSettings(
            index_url=default,
            extra_index_urls=(*extras, *settings.index.extra_index_urls),
            find_links=(*settings.index.find_links, *links),
            no_index=bool(uv.get("no-index", settings.index.no_index)),
        )
    except ValueError as exc:
        raise InvalidRequestError(f"pyproject.toml: bad index settings: {exc}") from None


def project_abi_pins(
    data: Mapping[str, Any], lock: Lock | None, settings: Settings, target: Target
) -> dict[str, str]:
    """The ABI-relevant versions (torch) the project installs: from its lock (parsed), else
    the pins of its pyproject.toml (`data`, parsed)."""
    if lock is not None:
        found = reachable(lock, target)
        return {n: found[n].version for n in settings.abi_pins if n in found}
    return declared_pins(data, settings.abi_pins)


def declared_pins(data: Mapping[str, Any], names: Iterable[str]) -> dict[str, str]:
    """Exact pins (`torch==2.13.0`) of `names` among the project's own dependencies."""
    wanted = {canonicalize_name(n) for n in names}
    pins: dict[str, str] = {}
    for text in data.get("project", {}).get("dependencies", []):
        try:
            req = Requirement(str(text))
        except InvalidRequirement:
            continue
        specs = list(req.specifier)
        name = canonicalize_name(req.name)
        if name in wanted and len(specs) == 1 and specs[0].operator == "==":
            pins[name] = specs[0].version
    return pins


def check_python(data: Mapping[str, Any], target: Target, where: Path) -> None:
    """Refuse a target whose Python the project's `requires-python` excludes."""
    text = data.get("project", {}).get("requires-python")
    if not text:
        return
    try:
        allowed = SpecifierSet(str(text))
    except InvalidSpecifier as exc:
        raise InvalidRequestError(f"{where}: requires-python {text!r}: {exc}") from None
    if not any(allowed.contains(f"{target.python}.{patch}") for patch in range(30)):
        raise InvalidRequestError(
            f"{where} requires Python {text}, but the target {target.label} has Python "
            f"{target.python}; choose a target with --python"
        )
