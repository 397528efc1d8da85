"""Unpack a source archive safely: nothing escapes the target folder, sizes are bounded.

Tar archives go through the standard library's `data` extraction filter (no absolute paths, no
`..`, no links pointing out, no device files); zip members are checked the same way by hand,
since zipfile has no such filter. Limits are checked on the member list before anything is written.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from service.errors import UnsafeArchiveError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")


@dataclass(frozen=True)
class Limits:
    max_members: int = 100_000
    max_bytes: int = 4 * 1024**3


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, target: Path, limits: Limits | None = None) -> Path:
    """Extract `archive` into `target` and return the project root inside it."""
    limits = limits or Limits()
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        _unzip(archive, target, limits)
    else:
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                _check_limits(archive, len(members), sum(m.size for m in members), limits)
                for member in members:
                    _check_name(archive, member.name)
                tar.extractall(target, filter="data")
        except tarfile.FilterError as exc:
            raise UnsafeArchiveError(f"{archive.name}: unsafe member refused: {exc}") from None
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise UnsafeArchiveError(f"{archive.name} is not a readable archive: {exc}") from None
    return project_root(target)


def project_root(target: Path) -> Path:
    """An sdist holds one top folder (`name-version/`); a bare archive may not."""
    entries = [p for p in target.iterdir() if p.name not in ("__MACOSX",)]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return target


def _unzip(archive: Path, target: Path, limits: Limits) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        _check_limits(archive, len(infos), sum(i.file_size for i in infos), limits)
        for info in infos:
            _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(f"{archive.name}: link member {info.filename!r} refused")
        zf.extractall(target)  # noqa: S202  (every name was checked just above)


def _check_name(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} would escape the target folder")


def _check_limits(archive: Path, count: int, size: int, limits: Limits) -> None:
    if count > limits.max_members:
        raise UnsafeArchiveError(
            f"{archive.name} has {count} members, more than the limit of {limits.max_members}"
        )
    if size > limits.max_bytes:
        raise UnsafeArchiveError(
            f"{archive.name} unpacks to {size} bytes, more than the limit of {limits.max_bytes}"
        )
