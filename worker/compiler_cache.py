"""A project's compiler cache: brought from the store before a build, saved after a good one.

The build stage runs with the network off, so sccache's cache is a plain folder the build stage
alone may write. The worker, outside every container, fills it from the store before the build
and saves it back only after the build was published. Whose cache a build uses is its scope
(`worker.cache_scope`): the project and its origin, so no build brings what another origin
wrote, and one project's cache is never another's.

In the store, a cache is a series of generations, each one whole (an uncompressed tar: sccache's
entries are compressed already):

    compiler-cache/<scope id>/<generation, 10 digits>.tar

A build brings the newest; its save writes the next number with a conditional write (`if_absent`),
so of two builds that brought the same generation exactly one saves, and no save ever overwrites
another. The two newest generations are kept (a reader may still be fetching the older one).
A cache is bounded in bytes and in members (files, and the folders they need: 20,000 empty
files weigh nothing but cost as much to store and unpack as 20,000 objects): a save keeps the
most recently used that fit, and a stored generation past either bound is not brought.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from service import layout
from service.errors import ObjectExistsError, ObjectNotFoundError, StoreError
from service.models import BuildRequest
from service.store import WheelStore
from worker.cache_scope import Scope

KEEP_GENERATIONS = 2
_GENERATION_RE = re.compile(r"^(\d{10})\.tar$")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """One cache's bounds (`compiler_cache.max_bytes`, `compiler_cache.max_members`)."""

    max_bytes: int
    max_members: int


def scope_prefix(scope: str) -> str:
    """Where the scope's generations lie in the store (see `service.layout`)."""
    return layout.compiler_cache_prefix(scope)


@dataclass(frozen=True)
class Brought:
    """What `bring` found: `scope` is the one a save writes, `generation` its newest stored
    (0: none; a save writes the next); what was unpacked came from `read_scope` (that scope,
    or its read-only fallback; None: nothing was), generation `read_generation`."""

    scope: str
    prefix: str
    generation: int
    read_scope: str | None = None
    read_generation: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def facts(self) -> dict[str, Any]:
        brought = {
            "scope": self.read_scope,
            "generation": self.read_generation,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": self.seconds,
        }
        return {"scope": self.scope, "brought": brought}


def generations(store: WheelStore, prefix: str) -> list[tuple[int, str]]:
    """(generation, key) of the scope's stored caches, oldest first."""
    found = []
    for obj in store.list(prefix):
        match = _GENERATION_RE.match(obj.key.removeprefix(prefix))
        if match:
            found.append((int(match.group(1)), obj.key))
    return sorted(found)


def newest(store: WheelStore, scope: str) -> int:
    """The scope's newest stored generation (0: none)."""
    found = generations(store, scope_prefix(scope))
    return found[-1][0] if found else 0


def bring(store: WheelStore, scope: Scope, folder: Path, limits: Limits) -> Brought:
    """Unpack the newest generation of `scope` into the empty `folder`, or of its fallback
    when it has none (nothing anywhere: generation 0, nothing read). `StoreError` when the
    stored generation is past the limits or unsafe (the folder may then hold part of it)."""
    started = time.monotonic()
    prefix = scope_prefix(scope.name)
    folder.mkdir(parents=True, exist_ok=True)
    for read in (scope.name, scope.fallback):
        if read is None:
            continue
        found = _unpack_newest(store, read, folder, limits)
        if found is not None:
            generation, files, size = found
            own = generation if read == scope.name else 0
            seconds = round(time.monotonic() - started, 3)
            return Brought(scope.name, prefix, own, read, generation, files, size, seconds)
    return Brought(scope.name, prefix, 0, seconds=round(time.monotonic() - started, 3))


def _unpack_newest(
    store: WheelStore, scope: str, folder: Path, limits: Limits
) -> tuple[int, int, int] | None:
    """(generation, files, bytes) of the scope's newest generation, unpacked; None if none."""
    prefix = scope_prefix(scope)
    for _attempt in range(3):  # the newest may be replaced and removed while we list
        found = generations(store, prefix)
        if not found:
            return None
        generation, key = found[-1]
        try:
            with store.open(key) as stream:
                files, size = _unpack(stream, folder, limits)
        except ObjectNotFoundError:
            continue
        except (StoreError, tarfile.TarError) as exc:
            raise StoreError(f"generation {generation} ({key}) refused: {exc}") from None
        return generation, files, size
    return None


def _unpack(stream: Any, folder: Path, limits: Limits) -> tuple[int, int]:
    """Regular files and folders only, each inside `folder`, up to twice `max_bytes` (a save
    trims to `max_bytes`) and `max_members` members (each member, and each folder one needs)."""
    files = size = members = 0
    folders: set[PurePosixPath] = set()
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            members += 1
            folders.update(PurePosixPath(member.name).parents)
            if members + len(folders) - 1 > limits.max_members:  # `parents` ends with "."
                raise StoreError(
                    f"more than {limits.max_members} members (compiler_cache.max_members)"
                )
            if not (member.isfile() or member.isdir()):
                continue
            size += member.size
            if size > limits.max_bytes * 2:
                raise StoreError(f"larger than {2 * limits.max_bytes} bytes")
            tar.extract(member, folder, filter="data")
            files += member.isfile()
    return files, size


def trim(folder: Path, limits: Limits) -> tuple[int, int]:
    """Keep the most recently used files (newest modification time) while they fit in
    `max_bytes` and `max_members` (a file counts one, and so does each folder it needs); remove
    the rest, every empty folder, and links and special files. Returns (files, bytes) removed."""
    entries: list[tuple[float, str, int, Path]] = []
    for root, dirs, names in os.walk(folder):
        for name in [*names, *(d for d in dirs if Path(root, d).is_symlink())]:
            path = Path(root, name)
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                path.unlink()
                continue
            entries.append((info.st_mtime, str(path), info.st_size, path))
    kept = kept_bytes = removed = removed_bytes = 0
    needed: set[Path] = set()
    full = False
    for _mtime, _name, size, path in sorted(entries, reverse=True):
        parents = list(path.relative_to(folder).parents)[:-1]  # the last is "."
        new = [p for p in parents if p not in needed]
        fits = kept_bytes + size <= limits.max_bytes
        fits = fits and kept + 1 + len(needed) + len(new) <= limits.max_members
        if full or not fits:
            full = True  # everything older goes too: least recently used first
            path.unlink()
            removed += 1
            removed_bytes += size
            continue
        kept += 1
        kept_bytes += size
        needed.update(new)
    for root, dirs, _names in os.walk(folder, topdown=False):
        for name in dirs:
            path = Path(root, name)
            if not path.is_symlink() and not any(path.iterdir()):
                path.rmdir()
    return removed, removed_bytes


def save(
    store: WheelStore, brought: Brought, folder: Path, limits: Limits, work: Path
) -> dict[str, Any]:
    """Trim `folder` to the limits and store it as the generation after the newest one of the
    build's own scope (never in the fallback it may have read).

    Another build that saved that generation first wins: this one then saves nothing.
    """
    started = time.monotonic()
    evicted, evicted_bytes = trim(folder, limits)
    generation = brought.generation + 1
    key = layout.compiler_cache_key(brought.prefix, generation)
    with tempfile.TemporaryFile(dir=work) as spool:
        files, size = _pack(folder, spool)
        spool.seek(0)
        try:
            store.put(key, spool, content_type="application/x-tar", if_absent=True)
        except ObjectExistsError:
            return {
                "saved": False,
                "reason": f"another build saved generation {generation} first",
                "evicted_files": evicted,
                "seconds": round(time.monotonic() - started, 3),
            }
    for old, old_key in generations(store, brought.prefix):
        if old <= generation - KEEP_GENERATIONS:
            store.delete(old_key)
    return {
        "saved": True,
        "key": key,
        "generation": generation,
        "files": files,
        "bytes": size,
        "evicted_files": evicted,
        "evicted_bytes": evicted_bytes,
        "seconds": round(time.monotonic() - started, 3),
    }


def _pack(folder: Path, out: Any) -> tuple[int, int]:
    """A tar of the regular files under `folder`, in name order, with their times (LRU order)."""
    files = size = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            for name in sorted(names):
                path = Path(root, name)
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    continue
                member = tarfile.TarInfo(path.relative_to(folder).as_posix())
                member.size, member.mtime, member.mode = info.st_size, int(info.st_mtime), 0o644
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as stream:
                    tar.addfile(member, stream)
                files += 1
                size += info.st_size
    return files, size


def figures(stats: Any) -> dict[str, Any] | None:
    """The counts a person reads, from `sccache --show-stats --stats-format=json`."""
    if not isinstance(stats, dict) or not isinstance(stats.get("stats"), dict):
        return None
    raw = stats["stats"]

    def total(name: str) -> int:
        section = raw.get(name)
        counts = section.get("counts", {}) if isinstance(section, dict) else {}
        return sum(int(v) for v in counts.values() if isinstance(v, int))

    def by_kind(name: str) -> dict[str, int]:
        section = raw.get(name)
        counts = section.get("counts", {}) if isinstance(section, dict) else {}
        return {str(k): int(v) for k, v in sorted(counts.items()) if isinstance(v, int)}

    not_cached = raw.get("not_cached") if isinstance(raw.get("not_cached"), dict) else {}
    return {
        "compile_requests": int(raw.get("compile_requests", 0)),
        "compiles": total("cache_hits") + total("cache_misses"),
        "hits": total("cache_hits"),
        "misses": total("cache_misses"),
        "hits_by_language": by_kind("cache_hits"),
        "misses_by_language": by_kind("cache_misses"),
        "not_cacheable": int(raw.get("requests_not_cacheable", 0)),
        "not_cacheable_reasons": {str(k): int(v) for k, v in sorted(not_cached.items())},
        "not_compile": int(raw.get("requests_not_compile", 0)),
        "unsupported_compiler": int(raw.get("requests_unsupported_compiler", 0)),
        "errors": total("cache_errors") + int(raw.get("cache_read_errors", 0)),
        "cache_writes": int(raw.get("cache_writes", 0)),
        "cache_bytes": int(stats.get("cache_size") or 0),
    }


def why_off(request: BuildRequest, enabled: bool, executor_supports: bool, has_store: bool) -> str:
    """Why a build runs without the compiler cache ('' when it runs with it)."""
    if not enabled:
        return "turned off by the service's settings (compiler_cache.enabled)"
    if not request.compiler_cache:
        return "turned off by the request or its environment"
    if not executor_supports:
        return "this executor cannot give builds a cache at fixed paths"
    if not has_store:
        return "no store to bring the cache from"
    return ""


def bring_or_cold(
    store: WheelStore, scope: Scope, folder: Path, limits: Limits, say: Any
) -> Brought:
    """`bring`, or an empty cache (said in the log, naming the generation) when the stored one
    cannot be read or is past the limits; the next save then supersedes that generation."""
    try:
        brought = bring(store, scope, folder, limits)
    except (StoreError, tarfile.TarError, OSError) as exc:
        say(f"--- compiler cache of {scope.name} not brought: {exc}; starting cold")
        _empty(folder)
        try:
            own = newest(store, scope.name)
        except StoreError:
            own = 0
        return Brought(scope.name, scope_prefix(scope.name), own)
    if brought.read_scope is None:
        say(f"compiler cache of {scope.name}: none stored yet (a cold build)")
    else:
        read = "" if brought.read_scope == scope.name else f" (read-only: {brought.read_scope})"
        say(
            f"compiler cache of {scope.name}{read}: generation {brought.read_generation},"
            f" {brought.files} files, {brought.bytes} bytes in {brought.seconds:.1f}s"
        )
    return brought


def _empty(folder: Path) -> None:
    for root, dirs, names in os.walk(folder, topdown=False):
        for name in names:
            Path(root, name).unlink()
        for name in dirs:
            path = Path(root, name)
            if path.is_symlink():
                path.unlink()
            else:
                path.rmdir()


def save_reason(brought: Brought, counts: dict[str, Any] | None) -> str:
    """Why a successful build's cache is not saved ('' when it is)."""
    if counts is None:
        return "sccache reported no statistics"
    if brought.read_scope is not None and not counts["cache_writes"]:
        return "nothing new: every compile was a hit"
    return ""
