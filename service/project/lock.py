"""uv.lock, read: every locked package with its files and its dependency edges.

uv resolved once, for every platform; this module only reads what it decided (names, versions,
markers, the sdist and the wheels of each package). It never resolves anything itself.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from service.errors import InvalidRequestError

SUPPORTED_LOCK_VERSION = 1


@dataclass(frozen=True)
class Dependency:
    """One edge of the lock: `name`, needed when `marker` holds, with these extras of it."""

    name: str
    marker: str | None = None
    extras: tuple[str, ...] = ()
    version: str | None = None  # set where the lock holds several versions of `name` (a fork)


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    source: Mapping[str, str]
    sdist: str | None = None
    wheels: tuple[str, ...] = ()
    #: where the lock says the sdist lies (an http(s) URL) and its sha256, where it says
    sdist_url: str | None = None
    sdist_sha256: str | None = None
    dependencies: tuple[Dependency, ...] = ()
    optional: Mapping[str, tuple[Dependency, ...]] = field(default_factory=dict)
    dev: Mapping[str, tuple[Dependency, ...]] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        """The project itself or a workspace member (virtual, editable, a path): not built here."""
        return any(kind in self.source for kind in ("virtual", "editable", "directory", "path"))

    @property
    def registry(self) -> str | None:
        return self.source.get("registry")

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Lock:
    #: By name: one version, or several where uv forked the resolution (by Python, platform).
    versions: Mapping[str, tuple[LockedPackage, ...]]
    requires_python: str | None

    @property
    def roots(self) -> list[LockedPackage]:
        """The project's own packages (and workspace members): where the graph starts."""
        return [p for found in self.versions.values() for p in found if p.is_local]

    def resolve(self, dep: Dependency) -> LockedPackage | None:
        """The locked package an edge points to (by its version, in a fork)."""
        found = self.versions.get(dep.name, ())
        if dep.version is not None:
            found = tuple(p for p in found if p.version == dep.version)
        return found[0] if len(found) == 1 else None


def parse_lock(text: str, *, where: str = "uv.lock") -> Lock:
    """The packages of a uv.lock; `InvalidRequestError` naming what is wrong with it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequestError(f"{where} is not valid TOML: {exc}") from None
    version = data.get("version")
    if version != SUPPORTED_LOCK_VERSION:
        raise InvalidRequestError(
            f"{where} has lock version {version!r}; this service reads version "
            f"{SUPPORTED_LOCK_VERSION} (uv 0.4 and later)"
        )
    versions: dict[str, list[LockedPackage]] = {}
    for raw in data.get("package", []):
        package = _package(raw, where)
        same = versions.setdefault(package.name, [])
        if any(p.version == package.version for p in same):
            raise InvalidRequestError(f"{where} locks {package.pin} twice")
        same.append(package)
    return Lock(
        versions={name: tuple(found) for name, found in versions.items()},
        requires_python=data.get("requires-python"),
    )


def _package(raw: Mapping[str, Any], where: str) -> LockedPackage:
    try:
        name = canonicalize_name(str(raw["name"]))
        sdist = raw.get("sdist")
        digest = sdist.get("hash") if isinstance(sdist, Mapping) else None
        url, sha256 = sdist_location(sdist, digest)
        return LockedPackage(
            name=name,
            version=str(raw.get("version", "")),
            source={str(k): str(v) for k, v in dict(raw.get("source", {})).items()},
            sdist=_filename(sdist) if isinstance(sdist, Mapping) else None,
            sdist_url=url,
            sdist_sha256=sha256,
            wheels=tuple(_filename(w) for w in raw.get("wheels", [])),
            dependencies=_deps(raw.get("dependencies", [])),
            optional={
                str(extra): _deps(deps)
                for extra, deps in dict(raw.get("optional-dependencies", {})).items()
            },
            dev={
                str(group): _deps(deps)
                for group, deps in dict(raw.get("dev-dependencies", {})).items()
            },
        )
    except (KeyError, TypeError, ValueError, InvalidWheelFilename) as exc:
        raise InvalidRequestError(f"{where}: a malformed [[package]] entry ({exc})") from None


def sdist_location(entry: Any, digest: Any) -> tuple[str | None, str | None]:
    """The sdist's URL (an http(s) one; a path is not fetchable by a worker) and its sha256
    (`digest`: uv.lock's `"sha256:HEX"`, or a pylock's bare hex), as the lock records them."""
    if not isinstance(entry, Mapping):
        return None, None
    url = entry.get("url")
    url = url if isinstance(url, str) and url.startswith(("http://", "https://")) else None
    sha = digest if isinstance(digest, str) else None
    if sha is not None and sha.startswith("sha256:"):
        sha = sha.removeprefix("sha256:")
    elif sha is not None and ":" in sha:
        sha = None  # another algorithm: nothing this service checks
    return url, sha.lower() if sha else None


def _filename(entry: Mapping[str, Any]) -> str:
    for key in ("filename", "url", "path"):
        if key in entry:
            return str(entry[key]).rstrip("/").rsplit("/", 1)[-1]
    raise ValueError("a file entry without url, path or filename")


def _deps(entries: Any) -> tuple[Dependency, ...]:
    return tuple(
        Dependency(
            name=canonicalize_name(str(e["name"])),
            marker=e.get("marker"),
            extras=tuple(str(x) for x in e.get("extra", ())),
            version=str(e["version"]) if "version" in e else None,
        )
        for e in entries
    )


def wheel_tags(filename: str) -> frozenset[Any]:
    return parse_wheel_filename(filename)[3]
