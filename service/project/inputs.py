"""What a project command was given: a folder (pyproject.toml first, else pylock.toml, else
requirements.txt) or one of those files directly; and, for the two without a pyproject, the
lock read from it (a pylock.toml as it is, a requirements.txt resolved by uv)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from service.config import Settings
from service.egress import EgressPolicy
from service.errors import InvalidRequestError
from service.models import Target
from service.project.files import read_lock_text, read_requirements
from service.project.lock import Lock
from service.project.plan import reachable
from service.project.pylock import parse_pylock
from service.project.requirements import (
    check_requirements,
    compile_requirements,
    exact_pins,
    requirement_names,
    uv_index_table,
)
from service.project.trust import check_location


class InputKind(StrEnum):
    PYPROJECT = "pyproject.toml"
    PYLOCK = "pylock.toml"
    REQUIREMENTS = "requirements.txt"


@dataclass(frozen=True)
class ProjectInput:
    kind: InputKind
    file: Path

    @property
    def folder(self) -> Path:
        return self.file.parent

    @property
    def has_pyproject(self) -> bool:
        return self.kind is InputKind.PYPROJECT


def find_input(path: Path) -> ProjectInput:
    """The project file `path` names or holds; `InvalidRequestError` when it holds none."""
    path = path.expanduser().resolve()
    if path.is_dir():
        for kind in InputKind:
            if (path / kind.value).is_file():
                return ProjectInput(kind, path / kind.value)
        names = ", ".join(kind.value for kind in InputKind)
        raise InvalidRequestError(f"{path} holds none of {names}")
    if not path.is_file():
        raise InvalidRequestError(f"{path} does not exist")
    return ProjectInput(_kind_of(path), path)


def _kind_of(path: Path) -> InputKind:
    name = path.name
    if name == "pyproject.toml":
        return InputKind.PYPROJECT
    if name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml")):
        return InputKind.PYLOCK
    if name.endswith((".txt", ".in")):
        return InputKind.REQUIREMENTS
    raise InvalidRequestError(
        f"{path}: not a project file (pyproject.toml, pylock.toml or pylock.NAME.toml, "
        "or a requirements file ending in .txt or .in)"
    )


@dataclass(frozen=True)
class InputLock:
    """The lock of a pylock.toml or requirements.txt, or the package uv cannot resolve the
    requirements without building first (`name==version`)."""

    lock: Lock | None
    blocked_by: str | None = None


def input_lock(
    given: ProjectInput,
    settings: Settings,
    target: Target,
    *,
    egress: EgressPolicy,
    index: str | None = None,
    fresh: tuple[str, ...] = (),
    text: str | None = None,
) -> InputLock:
    """The lock of a pylock.toml or a requirements.txt (resolved by uv for `target`); `text`:
    the file read already (else read here, bounded)."""
    if given.kind is InputKind.PYLOCK:
        text = read_lock_text(given.file, settings) if text is None else text
        return InputLock(parse_pylock(text, where=str(given.file)))
    if given.kind is InputKind.REQUIREMENTS:
        compiled = compile_requirements(
            given.file, settings, target, egress=egress, index=index, fresh=fresh, text=text
        )
        if compiled.text is None:
            return InputLock(None, compiled.blocked_by)
        where = f"the pylock.toml uv made of {given.file}"
        return InputLock(parse_pylock(compiled.text, where=where))
    raise InvalidRequestError(f"{given.file}: a pyproject.toml is locked with uv lock, not here")


@dataclass(frozen=True)
class InputProject:
    """What a pylock.toml or requirements.txt says of its environment, in a pyproject's terms:
    the ABI pins (torch) it installs, where packages come from (a `[tool.uv]` table, checked
    against the service's allow-lists), and the names it requires directly. `text` is the
    file as read (bounded), `lock` a pylock.toml's, parsed: neither is read again."""

    abi_pins: dict[str, str]
    data: dict[str, Any]
    direct: frozenset[str]
    text: str = ""
    lock: Lock | None = None


def input_project(
    given: ProjectInput, settings: Settings, target: Target, *, egress: EgressPolicy
) -> InputProject:
    where = str(given.file)
    if given.kind is InputKind.REQUIREMENTS:
        text = read_requirements(given.file, settings)
        check_requirements(text, settings, egress=egress, where=where)
        pins = exact_pins(text, settings.abi_pins)
        direct = frozenset(requirement_names(text))
        return InputProject(pins, {"tool": {"uv": uv_index_table(text)}}, direct, text)
    text = read_lock_text(given.file, settings)
    lock = parse_pylock(text, where=where)
    found = reachable(lock, target)
    pins = {n: found[n].version for n in map(canonicalize_name, settings.abi_pins) if n in found}
    registries = sorted({p.registry for p in found.values() if p.registry})
    for url in registries:
        what = f"{where}: index {url!r}"
        check_location(url, (), what=what, egress=egress, folders_ok=False)
    # a pylock need not record which packages the user asked for: none is taken as direct,
    # so the printed configuration leaves our index searchable rather than explicit
    data: dict[str, Any] = {"tool": {"uv": {"extra-index-url": registries}}}
    if lock.requires_python:  # checked against the target's Python as a pyproject's is
        data["project"] = {"requires-python": lock.requires_python}
    return InputProject(pins, data, frozenset(), text, lock)
