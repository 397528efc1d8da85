"""The project's lock, from uv: read as it is when it matches pyproject.toml, made when absent.

uv runs in a scratch copy of the two files (the user's folder is never written) with building
forbidden (`--no-build`): locking never runs a build backend outside a build container. A lock
that no longer matches its pyproject.toml is refused, not silently re-resolved.

A package uv cannot lock without building it (an sdist whose dependencies only its setup.py
knows, like torch-scatter's Metadata-Version 2.1) blocks the lock: it must be built first (in a
build container) and served from the environment's index with its PEP 658 metadata; the next
lock, with that index in front, goes further (a fixpoint, each round shorter). The blocker is
returned by name so the caller can say, or build, exactly that.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import uv

from service.errors import InvalidRequestError

UV_TIMEOUT_S = 600
_NEEDS_BUILD = re.compile(r"(?:^|\s)([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) has no usable wheels")


@dataclass(frozen=True)
class ProjectLock:
    """The lock's text, or the package that must be built before uv can lock the project."""

    text: str | None
    blocked_by: str | None = None


def project_lock(folder: Path, *, index: str | None = None) -> ProjectLock:
    """`folder`'s uv.lock, checked against its pyproject.toml, or made by uv; `index` (the
    environment's page on this service) in front of the project's own indexes."""
    front = ("--index", index) if index else ()
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        raise InvalidRequestError(f"{folder} has no pyproject.toml")
    existing = folder / "uv.lock"
    with tempfile.TemporaryDirectory(prefix="wheelwright-lock-") as scratch:
        work = Path(scratch)
        shutil.copyfile(pyproject, work / "pyproject.toml")
        if existing.is_file():
            shutil.copyfile(existing, work / "uv.lock")
            _uv(work, "--check", *front, what=f"{existing} does not match {pyproject}")
        else:
            blocker = _uv(
                work, *front, what=f"uv could not lock {pyproject} without building anything"
            )
            if blocker is not None:
                return ProjectLock(None, f"{blocker[0]}=={blocker[1]}")
        return ProjectLock((work / "uv.lock").read_text(encoding="utf-8"))


def _uv(work: Path, *flags: str, what: str) -> tuple[str, str] | None:
    """Run `uv lock`; None when it locked, or the (name, version) that needs a build."""
    env = {**os.environ, "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
    try:
        done = subprocess.run(
            [uv.find_uv_bin(), "lock", "--no-build", "--directory", str(work), *flags],
            capture_output=True,
            text=True,
            env=env,
            timeout=UV_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InvalidRequestError(f"{what}: uv lock ran past {UV_TIMEOUT_S} s") from None
    if done.returncode == 0:
        return None
    blocker = _NEEDS_BUILD.search(done.stderr)
    if blocker and "--check" not in flags:
        return blocker.group(1), blocker.group(2)
    detail = " ".join(line.strip() for line in done.stderr.strip().splitlines()[-6:])
    raise InvalidRequestError(f"{what}: {detail}")
