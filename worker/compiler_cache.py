"""The project's compiler cache: brought from the store before a build, saved after a good one.

The build stage runs with the network off, so sccache's cache is a plain folder the build stage
alone may write. The worker, outside every container, fills it from the store before the build
and saves it back only after the build was published. One project's cache is never another's:
the store key names the project (its name for index and uploaded sources, its repository for
git builds), and each source kind has its own, so an upload cannot fill the cache that builds of
the index's sdists read.

In the store, a cache is a series of generations, each one whole (an uncompressed tar: sccache's
entries are compressed already):

    compiler-cache/<scope id>/<generation, 10 digits>.tar

A build brings the newest; its save writes the next number with a conditional write (`if_absent`),
so of two builds that brought the same generation exactly one saves, and no save ever overwrites
another. The two newest generations are kept (a reader may still be fetching the older one).
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from service import layout
from service.artifacts.checks import Expected
from service.errors import ObjectExistsError, ObjectNotFoundError, StoreError
from service.models import ArchiveSource, BuildRequest, DirectorySource, GitSource
from service.store import WheelStore

KEEP_GENERATIONS = 2
_GENERATION_RE = re.compile(r"^(\d{10})\.tar$")
_CHUNK = 1024 * 1024


def project_scope(request: BuildRequest, expected: Expected) -> str | None:
    """Whose cache a build may read and write: `index:<name>`, `upload:<name>`, `git:<repo>`;
    None when the project cannot be named before its code runs."""
    source = request.source
    if isinstance(source, GitSource):
        repo = re.sub(r"^[a-z+]+://([^@/]*@)?", "", source.url.lower()).removesuffix("/")
        return f"git:{repo.removesuffix('.git')}"
    name = expected.project
    if not name:
        return None
    kind = "upload" if isinstance(source, ArchiveSource | DirectorySource) else "index"
    return f"{kind}:{canonicalize_name(name)}"


def scope_prefix(scope: str) -> str:
    """Where the scope's generations lie in the store (see `service.layout`)."""
    return layout.compiler_cache_prefix(scope)


@dataclass(frozen=True)
class Brought:
    """What `bring` found for a scope: the generation it unpacked (0: none yet)."""

    scope: str
    prefix: str
    generation: int
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def facts(self) -> dict[str, Any]:
        brought = {
            "generation": self.generation,
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


def bring(store: WheelStore, scope: str, folder: Path, max_bytes: int) -> Brought:
    """Unpack the scope's newest cache into the empty `folder` (nothing there: generation 0)."""
    started = time.monotonic()
    prefix = scope_prefix(scope)
    folder.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):  # the newest may be replaced and removed while we list
        found = generations(store, prefix)
        if not found:
            return Brought(scope, prefix, 0, seconds=round(time.monotonic() - started, 3))
        generation, key = found[-1]
        try:
            with store.open(key) as stream:
                files, size = _unpack(stream, folder, max_bytes)
        except ObjectNotFoundError:
            continue
        seconds = round(time.monotonic() - started, 3)
        return Brought(scope, prefix, generation, files, size, seconds)
    return Brought(scope, prefix, 0, seconds=round(time.monotonic() - started, 3))


def _unpack(stream: Any, folder: Path, max_bytes: int) -> tuple[int, int]:
    """Regular files and folders only, each inside `folder`, up to `max_bytes` in all."""
    files = size = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if not (member.isfile() or member.isdir()):
                continue
            size += member.size
            if size > max_bytes * 2:  # a cache is trimmed to max_bytes before it is saved
                raise StoreError(f"the stored compiler cache is larger than {2 * max_bytes} bytes")
            tar.extract(member, folder, filter="data")
            files += member.isfile()
    return files, size


def trim(folder: Path, max_bytes: int) -> tuple[int, int]:
    """Remove the least recently used files (oldest modification time) until the folder holds
    at most `max_bytes`; return (files, bytes) removed. Links and special files are removed."""
    entries: list[tuple[float, int, Path]] = []
    total = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root, name)
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                path.unlink()
                continue
            entries.append((info.st_mtime, info.st_size, path))
            total += info.st_size
    removed = removed_bytes = 0
    for _mtime, size, path in sorted(entries, key=lambda e: (e[0], str(e[2]))):
        if total <= max_bytes:
            break
        path.unlink()
        total -= size
        removed += 1
        removed_bytes += size
    return removed, removed_bytes


def save(
    store: WheelStore, brought: Brought, folder: Path, max_bytes: int, work: Path
) -> dict[str, Any]:
    """Trim `folder` to `max_bytes` and store it as the generation after the one brought.

    Another build that saved that generation first wins: this one then saves nothing.
    """
    started = time.monotonic()
    evicted, evicted_bytes = trim(folder, max_bytes)
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


def bring_or_cold(store: WheelStore, scope: str, folder: Path, max_bytes: int, say: Any) -> Brought:
    """`bring`, or an empty cache (said in the log) when the stored one cannot be read."""
    try:
        brought = bring(store, scope, folder, max_bytes)
    except (StoreError, tarfile.TarError, OSError) as exc:
        say(f"--- compiler cache of {scope} could not be brought ({exc}); starting cold")
        _empty(folder)
        return Brought(scope, scope_prefix(scope), 0)
    if brought.generation:
        say(
            f"compiler cache of {scope}: generation {brought.generation},"
            f" {brought.files} files, {brought.bytes} bytes in {brought.seconds:.1f}s"
        )
    else:
        say(f"compiler cache of {scope}: none stored yet (a cold build)")
    return brought


def _empty(folder: Path) -> None:
    for root, dirs, names in os.walk(folder, topdown=False):
        for name in names:
            Path(root, name).unlink()
        for name in dirs:
            Path(root, name).rmdir()


def save_reason(brought: Brought, counts: dict[str, Any] | None) -> str:
    """Why a successful build's cache is not saved ('' when it is)."""
    if counts is None:
        return "sccache reported no statistics"
    if brought.generation and not counts["cache_writes"]:
        return "nothing new: every compile was a hit"
    return ""
