"""What a project says of its own builds, in its pyproject.toml.

- `[tool.uv.extra-build-dependencies]`, uv's own table: what a package's build needs besides what
  it declares, `{ requirement = "torch", match-runtime = true }` meaning the version the lock has;
- `[tool.wheelwright] build = [...]`: packages to build here even when a public wheel exists
  (a CUDA extension whose public wheels were built against another torch).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from service.errors import InvalidRequestError


@dataclass(frozen=True)
class ExtraBuildDependency:
    requirement: str
    match_runtime: bool = False

    @property
    def name(self) -> str:
        return canonicalize_name(Requirement(self.requirement).name)


@dataclass(frozen=True)
class ProjectBuildSettings:
    name: str | None = None
    extra_build_dependencies: Mapping[str, tuple[ExtraBuildDependency, ...]] = field(
        default_factory=dict
    )
    always_build: frozenset[str] = frozenset()


def read_project_settings(text: str, *, where: str = "pyproject.toml") -> ProjectBuildSettings:
    """The build settings of a pyproject.toml's text; `InvalidRequestError` naming a bad entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequestError(f"{where} is not valid TOML: {exc}") from None
    return project_build_settings(data, where=where)


def project_build_settings(
    data: Mapping[str, Any], *, where: str = "pyproject.toml"
) -> ProjectBuildSettings:
    """The build settings of a parsed pyproject.toml; `InvalidRequestError` naming a bad one."""
    tool = data.get("tool", {})
    extra = tool.get("uv", {}).get("extra-build-dependencies", {})
    if not isinstance(extra, Mapping):
        raise InvalidRequestError(f"{where}: [tool.uv.extra-build-dependencies] must be a table")
    table = tool.get("wheelwright", {})
    names = table.get("build", []) if isinstance(table, Mapping) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidRequestError(f"{where}: [tool.wheelwright] build must be a list of names")
    project = data.get("project", {})
    return ProjectBuildSettings(
        name=canonicalize_name(project["name"]) if "name" in project else None,
        extra_build_dependencies={
            canonicalize_name(name): tuple(_entry(e, name, where) for e in entries)
            for name, entries in extra.items()
        },
        always_build=frozenset(canonicalize_name(n) for n in names),
    )


def _entry(entry: Any, package: str, where: str) -> ExtraBuildDependency:
    if isinstance(entry, str):
        text, match = entry, False
    elif isinstance(entry, Mapping) and isinstance(entry.get("requirement"), str):
        text, match = entry["requirement"], bool(entry.get("match-runtime", False))
    else:
        raise InvalidRequestError(
            f"{where}: extra build dependency {entry!r} of {package} must be a requirement or "
            "{ requirement = ..., match-runtime = true }"
        )
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidRequestError(
            f"{where}: extra build dependency {text!r} of {package}: {exc}"
        ) from None
    return ExtraBuildDependency(text, match)
