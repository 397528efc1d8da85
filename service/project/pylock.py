"""pylock.toml (PEP 751), read into the same `Lock` that a uv.lock gives.

A pylock.toml lists the packages to install, each with an optional marker; it need not record
the graph (its `dependencies` are optional). So every package whose marker applies is a root:
the lock gets one virtual package, standing for the file, that depends on all of them (with
their markers), and `plan_project` follows the lock from there as for a uv.lock. Nothing is
resolved here: the file says what is installed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from service.errors import InvalidRequestError
from service.project.lock import Dependency, Lock, LockedPackage, sdist_location

#: The major lock-version this service reads; a newer minor one is read as 1.0 (PEP 751 asks
#: installers to do so), a newer major one refused.
SUPPORTED_MAJOR = 1
#: The name of the virtual package that stands for the file (it is never built or listed).
ROOT = "pylock-toml"


def parse_pylock(text: str, *, where: str = "pylock.toml") -> Lock:
    """The packages of a pylock.toml; `InvalidRequestError` naming the file and the entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequestError(f"{where} is not valid TOML: {exc}") from None
    _check_version(data.get("lock-version"), where)
    raw_packages = data.get("packages", [])
    if not isinstance(raw_packages, list):
        raise InvalidRequestError(f"{where}: packages must be an array of tables ([[packages]])")
    versions: dict[str, list[LockedPackage]] = {}
    roots: list[Dependency] = []
    for number, raw in enumerate(raw_packages, start=1):
        package, marker = _package(raw, f"{where}: [[packages]] entry {number}")
        same = versions.setdefault(package.name, [])
        if any(p.version == package.version for p in same):
            raise InvalidRequestError(f"{where} lists {package.pin} twice")
        same.append(package)
        roots.append(Dependency(name=package.name, marker=marker, version=package.version))
    if ROOT in versions:
        raise InvalidRequestError(f"{where} lists a package named {ROOT}, a name reserved here")
    root = LockedPackage(
        name=ROOT, version="0", source={"virtual": where}, dependencies=tuple(roots)
    )
    requires_python = data.get("requires-python")
    return Lock(
        versions={ROOT: (root,), **{name: tuple(found) for name, found in versions.items()}},
        requires_python=str(requires_python) if requires_python is not None else None,
    )


def _check_version(version: object, where: str) -> None:
    major = str(version).split(".", maxsplit=1)[0] if isinstance(version, str) else None
    if major is None or not major.isdigit():
        raise InvalidRequestError(
            f'{where}: lock-version must be a string like "1.0", found {version!r}'
        )
    if int(major) != SUPPORTED_MAJOR:
        raise InvalidRequestError(
            f"{where} has lock-version {version!r}; this service reads PEP 751 lock-version "
            f"{SUPPORTED_MAJOR}.x"
        )


def _package(raw: Any, entry: str) -> tuple[LockedPackage, str | None]:
    if not isinstance(raw, Mapping):
        raise InvalidRequestError(f"{entry} is not a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{entry} has no name")
    entry = f"{entry} ({name})"
    marker = raw.get("marker")
    if marker is not None and not isinstance(marker, str):
        raise InvalidRequestError(f"{entry}: marker must be a string")
    local = next((key for key in ("directory", "vcs", "archive") if key in raw), None)
    version = raw.get("version")
    if version is None and local is None:
        raise InvalidRequestError(f"{entry} has no version (only a vcs, directory or archive may)")
    sdist = raw.get("sdist")
    wheels = raw.get("wheels", [])
    if sdist is not None and not isinstance(sdist, Mapping):
        raise InvalidRequestError(f"{entry}: sdist must be a table")
    if not isinstance(wheels, list):
        raise InvalidRequestError(f"{entry}: wheels must be an array of tables")
    if local is None and sdist is None and not wheels:
        raise InvalidRequestError(f"{entry} has neither an sdist nor wheels nor another source")
    hashes = sdist.get("hashes") if isinstance(sdist, Mapping) else None
    location = sdist_location(sdist, hashes.get("sha256") if isinstance(hashes, Mapping) else None)
    try:
        wheel_names = tuple(_wheel(w) for w in wheels)
        package = LockedPackage(
            name=canonicalize_name(name),
            version=str(version) if version is not None else "",
            source=_source(raw, local),
            sdist=_filename(sdist) if sdist is not None else None,
            sdist_url=location[0],
            sdist_sha256=location[1],
            wheels=wheel_names,
            dependencies=_dependencies(raw.get("dependencies", [])),
        )
    except (KeyError, TypeError, ValueError, InvalidWheelFilename) as exc:
        raise InvalidRequestError(f"{entry}: {exc}") from None
    return package, marker


def _source(raw: Mapping[str, Any], local: str | None) -> dict[str, str]:
    if local is not None:  # built from the user's own tree or archive: not an index's package
        detail = raw[local]
        where = detail.get("path") or detail.get("url") if isinstance(detail, Mapping) else None
        return {"path" if local == "directory" else local: str(where or local)}
    index = raw.get("index")
    if index is not None:
        return {"registry": str(index)}
    # uv writes no `index`: where the first file lies says where the package comes from
    files = [raw.get("sdist"), *raw.get("wheels", [])]
    url = next((f["url"] for f in files if isinstance(f, Mapping) and "url" in f), None)
    return {"url": str(url)} if url is not None else {}


def _filename(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        raise TypeError("a file entry must be a table")
    for key in ("name", "url", "path"):
        if isinstance(entry.get(key), str) and entry[key]:
            return str(entry[key]).rstrip("/").rsplit("/", 1)[-1]
    raise ValueError("a file entry without name, url or path")


def _wheel(entry: Any) -> str:
    filename = _filename(entry)
    parse_wheel_filename(filename)  # a name that is not a wheel's is refused here, named
    return filename


def _dependencies(entries: Any) -> tuple[Dependency, ...]:
    if not isinstance(entries, list):
        raise TypeError("dependencies must be an array of tables")
    return tuple(
        Dependency(
            name=canonicalize_name(str(e["name"])),
            version=str(e["version"]) if "version" in e else None,
        )
        for e in entries
    )
