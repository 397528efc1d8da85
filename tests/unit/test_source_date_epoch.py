"""SOURCE_DATE_EPOCH comes from the source: a commit's time, an archive's newest member, a tree's
newest file; never earlier than 1980 (the first time a zip member can hold)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

from service.models import parse_request
from worker.epoch import ZIP_EPOCH, archive_epoch, source_date_epoch, tree_epoch
from worker.fetch import Fetched
from worker.git import Git


def _tar(path: Path, times: dict[str, int]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, mtime in times.items():
            info = tarfile.TarInfo(name)
            info.mtime, info.size = mtime, 1
            tar.addfile(info, io.BytesIO(b"x"))
    return path


def test_archives_give_their_newest_member(tmp_path: Path) -> None:
    assert (
        archive_epoch(_tar(tmp_path / "a.tar.gz", {"p/a": 1_600_000_000, "p/b": 1_700_000_000}))
        == 1_700_000_000
    )
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr(zipfile.ZipInfo("p/a", (2020, 5, 17, 10, 0, 0)), b"x")
        zf.writestr(zipfile.ZipInfo("p/b", (2021, 1, 1, 0, 0, 0)), b"x")
    assert archive_epoch(tmp_path / "a.zip") == 1_609_459_200
    (tmp_path / "broken.tar.gz").write_bytes(b"not an archive")
    assert archive_epoch(tmp_path / "broken.tar.gz") is None


def test_each_source_kind(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "dl").mkdir(parents=True)
    _tar(work / "dl" / "p-1.tar.gz", {"p-1/setup.py": 0})
    request = parse_request({"source": {"kind": "archive", "path": "/x/p-1.tar.gz"}})
    fetched = Fetched(request, "p-1.tar.gz", "0" * 64, work / "src")
    assert source_date_epoch(fetched, work, Git(allow_file=False)) == ZIP_EPOCH  # 1970 -> 1980

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.py").write_text("")
    os.utime(tree / "a.py", (1_650_000_000, 1_650_000_000))
    assert tree_epoch(tree) == 1_650_000_000

    repo = tmp_path / "repo" / "src"
    repo.mkdir(parents=True)
    env = {**os.environ, "GIT_COMMITTER_DATE": "@1700000000 +0000", "GIT_AUTHOR_DATE": "@1 +0000"}
    for args in (
        ["init", "-q"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
    ):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    git_request = parse_request(
        {"source": {"kind": "git", "url": "https://example.org/r.git", "commit": commit}}
    )
    fetched = Fetched(git_request, "r", commit, repo)
    assert source_date_epoch(fetched, repo.parent, Git(allow_file=False)) == 1_700_000_000
