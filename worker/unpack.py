"""Unpack a source archive safely: nothing escapes the target folder, sizes are bounded.

The archive is first checked by `service.archives.check_archive` (member by member, within the
limits, without writing); tar archives are then extracted through the standard library's `data`
filter, zip members (checked by hand, since zipfile has no such filter) with zipfile.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from service.archives import Limits, check_archive
from service.errors import UnsafeArchiveError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")

__all__ = ["ARCHIVE_SUFFIXES", "Limits", "is_archive", "project_root", "unpack"]


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, target: Path, limits: Limits | None = None) -> Path:
    """Extract `archive` into `target` and return the project root inside it."""
    limits = limits or Limits()
    with archive.open("rb") as stream:
        check_archive(archive.name, stream, limits)
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(target)  # noqa: S202  (every name was checked above)
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")
    except tarfile.FilterError as exc:
        raise UnsafeArchiveError(f"{archive.name}: unsafe member refused: {exc}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise UnsafeArchiveError(f"{archive.name} is not a readable archive: {exc}") from None
    return project_root(target)


def project_root(target: Path) -> Path:
    """An sdist holds one top folder (`name-version/`); a bare archive may not."""
    entries = [p for p in target.iterdir() if p.name not in ("__MACOSX",)]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return target
