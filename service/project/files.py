"""A project's files, read bounded: each one's size is checked (`stat`, then a read of at most
the limit) before a byte of it is parsed, against its limit in `limits` (pyproject.toml,
uv.lock and pylock.toml, requirements files). A file over its limit is refused naming the
file, its size and the setting; so is one that is not a regular file (a FIFO, a device).
Each file is read and parsed once, where the project is prepared, and passed on parsed."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

from service.config import Settings
from service.errors import InvalidRequestError


def read_bounded(path: Path, limit: int, *, setting: str) -> str:
    """The text of `path`, refused before it is read when it holds more than `limit` bytes
    (`setting` names the limit in the refusal)."""
    try:
        found = path.stat()
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(found.st_mode):
        raise InvalidRequestError(f"{path} is not a regular file")
    if found.st_size > limit:
        raise _too_large(path, found.st_size, limit, setting)
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)  # a file that grew since stat is still bounded
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise _too_large(path, len(data), limit, setting)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"{path} is not UTF-8 text: {exc}") from None


def _too_large(path: Path, size: int, limit: int, setting: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{path} is larger than the limit of {limit} bytes ({size} bytes or more; "
        f"limits.{setting}): it is not read"
    )


def read_toml(text: str, *, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequestError(f"{where} is not valid TOML: {exc}") from None


def read_pyproject(path: Path, settings: Settings) -> dict[str, Any]:
    """A pyproject.toml, bounded by `limits.max_pyproject_bytes`, parsed."""
    limit = settings.limits.max_pyproject_bytes
    return read_toml(read_bounded(path, limit, setting="max_pyproject_bytes"), where=str(path))


def read_lock_text(path: Path, settings: Settings) -> str:
    """A uv.lock or pylock.toml, bounded by `limits.max_lock_bytes`."""
    return read_bounded(path, settings.limits.max_lock_bytes, setting="max_lock_bytes")


def read_requirements(path: Path, settings: Settings) -> str:
    """A requirements file, bounded by `limits.max_requirements_bytes`."""
    limit = settings.limits.max_requirements_bytes
    return read_bounded(path, limit, setting="max_requirements_bytes")
