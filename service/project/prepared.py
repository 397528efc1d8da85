"""A project made ready to build, the same way for the CLI and the service: which file it is
(pyproject.toml, pylock.toml or requirements.txt), its environment, the ABI pins each build's
runtime gets, the names it requires directly, and, without a pyproject, how its lock is made.

Everything the project's files name is checked here, before uv runs or a slot is taken: each
file is read bounded and parsed once (`service.project.files`), and what it names that uv would
fetch passes the egress policy made now, from the operator's settings alone, before the
project's own environment is added to the settings its builds are submitted with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.config import Settings
from service.egress import EgressPolicy
from service.models import Target
from service.project.environment import (
    ProjectEnvironment,
    project_abi_pins,
    project_environment,
)
from service.project.files import read_lock_text, read_pyproject
from service.project.inputs import (
    InputKind,
    InputLock,
    InputProject,
    ProjectInput,
    find_input,
    input_lock,
    input_project,
)
from service.project.lock import Lock, parse_lock
from service.project.trust import check_project
from service.project.uvconfig import direct_dependencies

LockInput = Callable[[tuple[str, ...]], InputLock]


@dataclass(frozen=True)
class PreparedProject:
    given: ProjectInput
    env: ProjectEnvironment
    #: the service's settings with the environment's index in front (`env.settings`): what
    #: its builds are submitted with, never what the egress policy is made from
    settings: Settings
    abi_pins: dict[str, str]
    direct: frozenset[str]
    #: the lock of a pylock.toml or requirements.txt (None: a pyproject, locked by uv)
    lock_input: LockInput | None
    #: the operator's policy for what uv and git reach on the project's behalf
    egress: EgressPolicy
    #: the pyproject.toml, parsed; without one, the file's indexes as a `[tool.uv]` table
    pyproject: dict[str, Any] | None = None
    #: its uv.lock, parsed (None without one)
    lock: Lock | None = None

    @property
    def folder(self) -> Path:
        return self.given.folder


def prepare_project(
    path: Path,
    settings: Settings,
    target: Target,
    *,
    environment: str | None,
    base_url: str,
) -> PreparedProject:
    """`path` (a folder or one project file) made ready for `target`; refused with a clear
    error when it holds no project file or one over its size limit, names an unknown
    environment or a Python the target lacks, or names indexes or folders the service does not
    allow. `base_url`: where this service's own index is fetched from (the operator's
    `public_url`, or this process's own address), allowed by the policy as its own."""
    given = find_input(path)
    egress = EgressPolicy.from_settings(settings, own=base_url)
    data: dict[str, Any] | None = None
    lock: Lock | None = None
    other: InputProject | None = None
    if given.has_pyproject:
        data = read_pyproject(given.file, settings)
        check_project(data, settings, egress=egress, where=str(given.file))
        lock_file = given.folder / "uv.lock"
        if lock_file.is_file():
            lock = parse_lock(read_lock_text(lock_file, settings), where=str(lock_file))
        pins = project_abi_pins(data, lock, settings, target)
    else:
        other = input_project(given, settings, target, egress=egress)
        pins = other.abi_pins
    env = project_environment(
        settings,
        given.file,
        target=target,
        environment=environment,
        base_url=base_url,
        abi_pins=pins,
        data=data if other is None else other.data,
    )
    ready = env.settings(settings)
    if other is not None:
        locked = _lock_input(given, settings, target, env, egress=egress, other=other)
        return PreparedProject(given, env, ready, pins, other.direct, locked, egress, other.data)
    assert data is not None  # noqa: S101  (a pyproject was read above)
    direct = frozenset(direct_dependencies(data))
    return PreparedProject(given, env, ready, pins, direct, None, egress, data, lock)


def _lock_input(
    given: ProjectInput,
    settings: Settings,
    target: Target,
    env: ProjectEnvironment,
    *,
    egress: EgressPolicy,
    other: InputProject,
) -> LockInput:
    """The lock of a pylock.toml (parsed already) or requirements.txt (its text read once,
    resolved by uv each round), our environment's page in front; `settings`: the operator's
    (the folders its find-links may name are theirs, not the project's environment's)."""
    if given.kind is InputKind.PYLOCK and other.lock is not None:
        found = InputLock(other.lock)
        return lambda fresh: found
    return lambda fresh: input_lock(
        given, settings, target, egress=egress, index=env.index_url, fresh=fresh, text=other.text
    )
