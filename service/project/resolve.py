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

import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from packaging.utils import canonicalize_name

from service.config import Settings
from service.egress import EgressPolicy
from service.errors import InvalidRequestError
from service.project.files import read_lock_text, read_pyproject
from service.project.lock import parse_lock
from service.project.trust import check_project, run_uv, uv_detail

NEEDS_BUILD = re.compile(r"(?:^|\s)([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) has no usable wheels")


@dataclass(frozen=True)
class ProjectLock:
    """The lock's text, or the package that must be built before uv can lock the project."""

    text: str | None
    blocked_by: str | None = None


def project_lock(
    folder: Path,
    settings: Settings,
    *,
    egress: EgressPolicy,
    pyproject: Mapping[str, Any] | None = None,
    index: str | None = None,
    fresh: tuple[str, ...] = (),
) -> ProjectLock:
    """`folder`'s uv.lock, checked against its pyproject.toml, or made by uv; `index` (the
    environment's page on this service) in front of the project's own indexes; `fresh`: the
    packages published there since uv last looked (its cache may remember them missing).
    `pyproject`: the file parsed already (else read here, bounded); `egress`: the operator's
    policy, the only way uv reaches out."""
    front = _front(index, fresh)
    path = folder / "pyproject.toml"
    if not path.is_file():
        raise InvalidRequestError(f"{folder} has no pyproject.toml")
    data = read_pyproject(path, settings) if pyproject is None else pyproject
    check_project(data, settings, egress=egress, where=str(path))
    existing = folder / "uv.lock"
    with tempfile.TemporaryDirectory(prefix="wheelwright-lock-") as scratch:
        work = Path(scratch)
        shutil.copyfile(path, work / "pyproject.toml")  # its size was checked with the parse
        if existing.is_file():
            (work / "uv.lock").write_text(read_lock_text(existing, settings), encoding="utf-8")
            what = f"{existing} does not match {path}"
            _uv(work, settings, egress, "--check", *front, what=what)
        else:
            what = f"uv could not lock {path} without building anything"
            blocker = _uv(work, settings, egress, *front, what=what)
            if blocker is not None:
                return ProjectLock(None, f"{blocker[0]}=={blocker[1]}")
        return ProjectLock(read_lock_text(work / "uv.lock", settings))


def _front(index: str | None, fresh: tuple[str, ...]) -> tuple[str, ...]:
    if not index:
        return ()
    refresh = (arg for name in fresh for arg in ("--refresh-package", name))
    return ("--index", index, *refresh)


def _uv(
    work: Path, settings: Settings, egress: EgressPolicy, *flags: str, what: str
) -> tuple[str, str] | None:
    """Run `uv lock`; None when it locked, or the (name, version) that needs a build."""
    # The project's own [tool.uv] (its indexes, find-links: checked by `trust`) applies; the
    # user's and the system's uv.toml do not. (UV_NO_CONFIG would also drop the project's
    # [tool.uv], and with it the indexes the project names.)
    args = ["lock", "--no-build", "--directory", str(work), *flags]
    done = run_uv(args, settings, work, egress=egress, what=what)
    if done.returncode == 0:
        return None
    blocker = NEEDS_BUILD.search(done.stderr)
    if blocker and "--check" not in flags:
        return blocker.group(1), blocker.group(2)
    detail = uv_detail(done)
    raise InvalidRequestError(f"{what}: {detail}")


#: What a probe of a build's runtime keeps of the project's [tool.uv]: where packages come from.
INDEX_KEYS = ("index", "index-url", "extra-index-url", "find-links", "no-index", "index-strategy")


def runtime_blocker(
    pyproject: Path,
    requirements: tuple[str, ...],
    settings: Settings,
    *,
    egress: EgressPolicy,
    python: str,
    index: str | None,
    fresh: tuple[str, ...] = (),
    data: Mapping[str, Any] | None = None,
) -> str | None:
    """The package (`name==version`) that must be built before `requirements` (a build's
    runtime) can be installed for `python`, or None when uv resolves them from wheels alone.

    uv locks a scratch project of just those requirements, with the project's indexes and
    `index` in front, building forbidden, as `project_lock` does for the project itself.
    `data`: the pyproject parsed already (else read here, bounded)."""
    data = read_pyproject(pyproject, settings) if data is None else data
    check_project(data, settings, egress=egress, where=str(pyproject))
    uv_table = data.get("tool", {}).get("uv", {})
    probe = {
        "project": {
            "name": "wheelwright-runtime-probe",
            "version": "0",
            "requires-python": f"=={python}.*",
            "dependencies": list(requirements),
        },
        "tool": {"uv": {key: uv_table[key] for key in INDEX_KEYS if key in uv_table}},
    }
    with tempfile.TemporaryDirectory(prefix="wheelwright-probe-") as scratch:
        (Path(scratch) / "pyproject.toml").write_text(tomlkit.dumps(probe), encoding="utf-8")
        front = _front(index, fresh)
        blocker = _uv(
            Path(scratch),
            settings,
            egress,
            *front,
            what=f"uv could not resolve the build runtime {', '.join(requirements)}",
        )
    return f"{blocker[0]}=={blocker[1]}" if blocker else None


def blocker_sdist(
    pyproject: Path,
    pin: str,
    settings: Settings,
    *,
    egress: EgressPolicy,
    python: str,
    data: Mapping[str, Any] | None = None,
) -> tuple[str, str | None]:
    """Where uv resolves the sdist of `pin` (`name==version`, a package it cannot lock without
    building) from, and its sha256: the same rule as for a locked package, for what uv chose.

    uv locks a scratch project of just `pin`, with the project's indexes (and its
    `[tool.uv.sources]` entry for that name) and `pin`'s metadata given as
    `[[tool.uv.dependency-metadata]]` (with no dependencies): uv needs no build to lock it, so
    none runs, and its lock records the sdist's URL and hash."""
    data = read_pyproject(pyproject, settings) if data is None else data
    check_project(data, settings, egress=egress, where=str(pyproject))
    name, _, version = pin.partition("==")
    uv_table = data.get("tool", {}).get("uv", {})
    tool: dict[str, Any] = {key: uv_table[key] for key in INDEX_KEYS if key in uv_table}
    sources = uv_table.get("sources", {})
    own = {k: v for k, v in sources.items() if canonicalize_name(k) == canonicalize_name(name)}
    if own:
        tool["sources"] = own
    tool["dependency-metadata"] = [{"name": name, "version": version, "requires-dist": []}]
    probe = {
        "project": {
            "name": "wheelwright-sdist-probe",
            "version": "0",
            "requires-python": f"=={python}.*",
            "dependencies": [pin],
        },
        "tool": {"uv": tool},
    }
    what = f"uv could not find the sdist of {pin}"
    with tempfile.TemporaryDirectory(prefix="wheelwright-probe-") as scratch:
        work = Path(scratch)
        (work / "pyproject.toml").write_text(tomlkit.dumps(probe), encoding="utf-8")
        done = run_uv(["lock", "--directory", str(work)], settings, work, egress=egress, what=what)
        if done.returncode != 0:
            raise InvalidRequestError(f"{what}: {uv_detail(done)}")
        lock = parse_lock(read_lock_text(work / "uv.lock", settings), where=f"uv's lock of {pin}")
    found = next(iter(lock.versions.get(canonicalize_name(name), ())), None)
    if found is None or found.sdist_url is None:
        raise InvalidRequestError(f"{what}: uv resolved no sdist URL for it")
    return found.sdist_url, found.sdist_sha256
