"""Hostile archives that fetch refuses before any container starts (worker/fetch.py and
worker/unpack.py): paths that escape, links, special files, too many members, too many bytes.
Each fails the build at `fetch` with a clear error, opens no executor session, writes nothing
outside the workspace and leaves no workspace behind."""

from __future__ import annotations

import io
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.config import Settings
from service.errors import SourceNotFoundError, UnsafeArchiveError, WheelwrightError
from service.models import parse_request
from tests.buildkit import evil_tar, leftover_workspaces, make_sdist, request_for
from tests.fakes import FakeExecutor
from worker.engine import run_build
from worker.fetch import fetch
from worker.unpack import Limits


@dataclass
class Refuse:
    settings: Settings
    fake: FakeExecutor

    def __call__(self, archive: Path, **settings: object) -> WheelwrightError:
        """Build `archive`; it must fail at fetch with nothing started and nothing left."""
        chosen = self.settings.model_copy(update=settings)
        with pytest.raises(WheelwrightError) as info:
            run_build(request_for(archive), chosen, self.fake, lambda built: built)
        assert info.value.stage == "fetch"
        assert self.fake.sessions == 0, "no executor session may start for a refused archive"
        assert leftover_workspaces(chosen) == []
        return info.value


@pytest.fixture
def refused_at_fetch(settings: Settings, fake: FakeExecutor) -> Refuse:
    return Refuse(settings, fake)


def special_tar(dest: Path, kind: bytes, *, linkname: str = "") -> Path:
    archive = dest / "evil-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        setup = tarfile.TarInfo("evil-1.0/setup.py")
        setup.size = 0
        tar.addfile(setup, io.BytesIO(b""))
        member = tarfile.TarInfo("evil-1.0/odd")
        member.type, member.linkname = kind, linkname
        tar.addfile(member)
    return archive


@pytest.mark.parametrize(
    ("member", "link_to", "reason"),
    [
        ("evil-1.0/../../escaped.py", None, "would escape the target folder"),
        ("/etc/evil.py", None, "would escape the target folder"),
        ("evil-1.0/passwd", "/etc/passwd", "unsafe member refused"),
        ("evil-1.0/up", "../../../etc", "unsafe member refused"),
    ],
)
def test_tar_members_that_escape_are_refused(
    refused_at_fetch: Refuse, tmp_path: Path, member: str, link_to: str | None, reason: str
) -> None:
    error = refused_at_fetch(evil_tar(tmp_path, member, link_to=link_to))
    assert isinstance(error, UnsafeArchiveError)
    assert reason in str(error) and "evil-1.0.tar.gz" in str(error)
    assert not (tmp_path.parent / "escaped.py").exists()


@pytest.mark.parametrize(
    ("kind", "linkname", "reason"),
    [
        (tarfile.LNKTYPE, "../../../etc/passwd", "outside the destination"),
        (tarfile.CHRTYPE, "", "is a special file"),
        (tarfile.BLKTYPE, "", "is a special file"),
        (tarfile.FIFOTYPE, "", "is a special file"),
    ],
    ids=["hard-link-out", "char-device", "block-device", "fifo"],
)
def test_hard_links_out_and_special_files_are_refused(
    refused_at_fetch: Refuse, tmp_path: Path, kind: bytes, linkname: str, reason: str
) -> None:
    error = refused_at_fetch(special_tar(tmp_path, kind, linkname=linkname))
    assert isinstance(error, UnsafeArchiveError)
    assert "unsafe member refused" in str(error) and reason in str(error)


def test_zip_members_that_escape_or_link_are_refused(
    refused_at_fetch: Refuse, tmp_path: Path
) -> None:
    escaping = tmp_path / "evil-1.0.zip"
    with zipfile.ZipFile(escaping, "w") as zf:
        zf.writestr("../escaped.py", "print('pwned')\n")
    error = refused_at_fetch(escaping)
    assert "member '../escaped.py' would escape the target folder" in str(error)
    assert not (tmp_path.parent / "escaped.py").exists()

    (tmp_path / "link").mkdir()
    linking = tmp_path / "link" / "evil-1.0.zip"
    with zipfile.ZipFile(linking, "w") as zf:
        info = zipfile.ZipInfo("evil-1.0/passwd")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    error = refused_at_fetch(linking)
    assert "link member 'evil-1.0/passwd' refused" in str(error)


def test_too_many_members_are_refused(refused_at_fetch: Refuse, tmp_path: Path) -> None:
    sdist = make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0")
    error = refused_at_fetch(sdist, max_archive_members=2)
    assert "more than the limit of 2" in str(error)


def test_an_archive_too_large_unpacked_is_refused(refused_at_fetch: Refuse, tmp_path: Path) -> None:
    archive = tmp_path / "bomb-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(5):
            info = tarfile.TarInfo(f"bomb-1.0/zeros{i}")
            info.size = 400
            tar.addfile(info, io.BytesIO(b"\0" * 400))
    error = refused_at_fetch(archive, max_archive_bytes=1000)
    assert "bomb-1.0.tar.gz unpacks to 1200 bytes, more than the limit of 1000" in str(error)


def test_what_is_no_archive_is_refused(refused_at_fetch: Refuse, tmp_path: Path) -> None:
    script = tmp_path / "evil-1.0.sh"
    script.write_text("rm -rf /\n")
    request = parse_request({"source": {"kind": "archive", "path": str(script)}})
    with pytest.raises(UnsafeArchiveError, match=r"evil-1\.0\.sh is not a \.tar\.gz") as info:
        run_build(request, refused_at_fetch.settings, refused_at_fetch.fake, lambda b: b)
    assert info.value.stage == "fetch" and refused_at_fetch.fake.sessions == 0

    garbage = tmp_path / "junk-1.0.tar.gz"
    garbage.write_bytes(b"\x1f\x8b" + b"not gzip at all" * 10)
    error = refused_at_fetch(garbage)
    assert "junk-1.0.tar.gz is not a readable archive" in str(error)


def test_a_missing_archive_is_not_found(
    settings: Settings, fake: FakeExecutor, tmp_path: Path
) -> None:
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        run_build(request_for(tmp_path / "gone-1.0.tar.gz"), settings, fake, lambda b: b)
    assert fake.sessions == 0 and leftover_workspaces(settings) == []


def test_fetch_unpacks_a_good_sdist_with_its_identity(tmp_path: Path) -> None:
    """The same fetch, given a well-formed sdist: the project root and what it says it is."""
    sdist = make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0")
    fetched = fetch(request_for(sdist), tmp_path / "ws", Limits())
    assert fetched.root == tmp_path / "ws" / "src" / "modern_ext-2.0.0"
    assert (fetched.root / "pyproject.toml").is_file()
    assert (fetched.expected.project, fetched.expected.version) == ("modern-ext", "2.0.0")
    assert fetched.request.source.model_dump()["path"] == sdist.name  # keyed by content
