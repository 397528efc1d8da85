"""A project made ready to build, the same way for the CLI and the service: which file it is
(pyproject.toml, pylock.toml or requirements.txt), its environment, the ABI pins each build's
runtime gets, the names it requires directly, and, without a pyproject, how its lock is made."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.config import Settings
from service.errors import InvalidRequestError
from service.models import Target
from service.project.environment import (
    ProjectEnvironment,
    project_abi_pins,
    project_environment,
)
from service.project.inputs import InputLock, ProjectInput, find_input, input_lock, input_project
from service.project.uvconfig import direct_dependencies

LockInput = Callable[[tuple[str, ...]], InputLock]


@dataclass(frozen=True)
class PreparedProject:
    given: ProjectInput
    env: ProjectEnvironment
    #: the service's settings with the environment's index in front (`env.settings`)
    settings: Settings
    abi_pins: dict[str, str]
    direct: frozenset[str]
    #: the lock of a pylock.toml or requirements.txt (None: a pyproject, locked by uv)
    lock_input: LockInput | None

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
    error when it holds no project file, names an unknown environment or a Python the target
    lacks, or names indexes or folders the service does not allow."""
    given = find_input(path)
    other = None if given.has_pyproject else input_project(given, settings, target)
    pins = project_abi_pins(given.folder, settings, target) if other is None else other.abi_pins
    env = project_environment(
        settings,
        given.file,
        target=target,
        environment=environment,
        base_url=base_url,
        abi_pins=pins,
        data=None if other is None else other.data,
    )
    ready = env.settings(settings)
    if other is not None:
        return PreparedProject(
            given, env, ready, pins, other.direct, _lock_input(given, ready, target, env)
        )
    try:
        data = tomllib.loads(given.file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidRequestError(f"cannot read {given.file}: {exc}") from None
    return PreparedProject(given, env, ready, pins, frozenset(direct_dependencies(data)), None)


def _lock_input(
    given: ProjectInput, settings: Settings, target: Target, env: ProjectEnvironment
) -> LockInput:
    """The lock of a pylock.toml or requirements.txt, our environment's page in front."""
    return lambda fresh: input_lock(given, settings, target, index=env.index_url, fresh=fresh)
