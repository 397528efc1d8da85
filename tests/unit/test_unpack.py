"""Safe unpacking, without Docker: what lands where, and what is refused."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from service.errors import UnsafeArchiveError
from service.sources import tree_sha256
from worker.unpack import Limits, unpack


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_sdist_root_is_its_top_folder(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "p-1.tar.gz", {"p-1/setup.py": b"", "p-1/p/__init__.py": b""})
    root = unpack(archive, tmp_path / "out")
    assert root == tmp_path / "out" / "p-1"
    assert (root / "p" / "__init__.py").is_file()


def test_member_count_limit(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "p.tar.gz", {f"p/{i}.py": b"" for i in range(5)})
    with pytest.raises(UnsafeArchiveError, match="has 5 members, more than the limit of 4"):
        unpack(archive, tmp_path / "out", Limits(max_members=4))
    assert not (tmp_path / "out" / "p").exists()


def test_zip_link_member_refused(tmp_path: Path) -> None:
    archive = tmp_path / "p.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("p/link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="link member"):
        unpack(archive, tmp_path / "out")


def test_garbage_is_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "p.tar.gz"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(UnsafeArchiveError, match="not a readable archive"):
        unpack(junk, tmp_path / "out")


def test_tree_digest_ignores_caches_and_sees_content(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.pyc").write_bytes(b"junk")
    first = tree_sha256(tmp_path)
    (tmp_path / "__pycache__" / "b.pyc").write_bytes(b"more junk")
    assert tree_sha256(tmp_path) == first
    (tmp_path / "a.py").write_text("x = 2\n")
    assert tree_sha256(tmp_path) != first


def test_corrupt_zip_is_an_unsafe_archive_not_a_crash(tmp_path: Path) -> None:
    """A zip whose member data is damaged: a clear refusal, nothing written."""
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("p-1/setup.py", "print('hello')\n" * 200)
    data = bytearray(good.read_bytes())
    data[60:90] = b"\xff" * 30  # inside the compressed data of the member
    corrupt = tmp_path / "p-1.zip"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match=r"p-1\.zip"):
        unpack(corrupt, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_compressed_bomb_refused_while_walking(tmp_path: Path) -> None:
    """Sizes are summed member by member: the walk stops at the limit."""
    archive = _tar(tmp_path / "bomb.tar.gz", {f"b/{i}": b"\0" * 100_000 for i in range(50)})
    with pytest.raises(UnsafeArchiveError, match="more than the limit of 250000"):
        unpack(archive, tmp_path / "out", Limits(max_bytes=250_000))
