"""SOURCE_DATE_EPOCH: the one time a build may stamp, taken from the source, never the clock.

A git build takes its commit's time; an archive the newest time among its members; a directory
the newest modification time of its files. Zip files cannot hold times before 1980, so earlier
times become 1980-01-01.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from worker.fetch import Fetched
from worker.git import Git

ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip member can hold


def source_date_epoch(fetched: Fetched, workspace: Path, git: Git) -> int:
    kind = fetched.request.source.kind
    found: int | None = None
    if kind == "git":
        repo = workspace / "src"
        found = int(git.run("show", "-s", "--format=%ct", "HEAD", cwd=repo).strip() or 0)
    elif kind in ("archive", "requirement"):
        found = archive_epoch(workspace / "dl" / fetched.filename)
    if found is None:
        found = tree_epoch(fetched.root)
    return max(ZIP_EPOCH, found)


def archive_epoch(archive: Path) -> int | None:
    """The newest member time of a tar or zip archive (None if it cannot be read)."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                stamps = [info.date_time for info in zf.infolist()]
                times = [datetime(*stamp, tzinfo=UTC).timestamp() for stamp in stamps]
        else:
            with tarfile.open(archive) as tar:
                times = [member.mtime for member in tar]
    except (OSError, tarfile.TarError, zipfile.BadZipFile, ValueError):
        return None
    return int(max(times)) if times else None


def tree_epoch(root: Path) -> int:
    newest = 0
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            newest = max(newest, int(Path(folder, name).lstat().st_mtime))
    return newest
