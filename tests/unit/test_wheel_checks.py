"""Publish refuses a wheel that is not what was asked for or not what it says it is: each
refusal names the check, and nothing reaches the store."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from service.artifacts import lookup, publish
from service.artifacts.checks import Expected, WheelLimits, check_wheel
from service.errors import InvalidArtifactError
from service.models import parse_request
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel, record_hash
from worker.identity import expected_identity

ASKED = Expected("helper", "1.0", "the requested helper==1.0")
Rewrite = Callable[[dict[str, bytes]], dict[str, bytes]]


def rewritten(wheel: Path, change: Rewrite, *, links: tuple[str, ...] = ()) -> Path:
    """`wheel` with its members changed by `change`; `links` become symlink entries."""
    with zipfile.ZipFile(wheel) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members = change(members)
    out = wheel.parent / "evil" / wheel.name
    out.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            if name in links:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return out


def with_record(members: dict[str, bytes], extra: dict[str, bytes]) -> dict[str, bytes]:
    """`members` plus `extra`, each listed truthfully in RECORD."""
    record_name = next(n for n in members if n.endswith(".dist-info/RECORD"))
    record = members.pop(record_name).decode()
    for name, data in extra.items():
        record = f"{name},{record_hash(data)},{len(data)}\n" + record
    return {**members, **extra, record_name: record.encode()}


def test_the_asked_for_wheel_passes(tmp_path: Path) -> None:
    check_wheel(make_wheel(tmp_path, "helper", "1.0"), ASKED)
    check_wheel(make_wheel(tmp_path, "Helper", "1.0.0"), ASKED)  # same after normalizing
    check_wheel(make_wheel(tmp_path, "helper", "1.0+cpu"), ASKED)  # the package's own label


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("flash_attn", "9.9.9", "the wheel is for project 'flash-attn', but the requested"),
        ("numpy", "99.0", "the wheel is for project 'numpy'"),
        ("helper", "1.1", "the wheel has version 1.1, but the requested helper==1.0 has 1.0"),
    ],
)
def test_another_project_or_version_is_refused(
    tmp_path: Path, name: str, version: str, message: str
) -> None:
    with pytest.raises(InvalidArtifactError, match=message):
        check_wheel(make_wheel(tmp_path, name, version), ASKED)


def _lie_about_hash(members: dict[str, bytes]) -> dict[str, bytes]:
    return {**members, "helper/__init__.py": b'VERSION = "6.6"\n'}  # same size, other bytes


def _lie_about_size(members: dict[str, bytes]) -> dict[str, bytes]:
    record_name = next(n for n in members if n.endswith("RECORD"))
    data = members["helper/__init__.py"]
    text = members[record_name].decode().replace(f",{len(data)}\n", f",{len(data) + 1}\n", 1)
    return {**members, record_name: text.encode()}


def _unlisted(members: dict[str, bytes]) -> dict[str, bytes]:
    return {**members, "helper/extra.py": b"x = 1\n"}


def _listed_but_missing(members: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in members.items() if k != "helper/__init__.py"}


def _weak_hash(members: dict[str, bytes]) -> dict[str, bytes]:
    record_name = next(n for n in members if n.endswith("RECORD"))
    text = members[record_name].decode().replace("sha256=", "md5=", 1)
    return {**members, record_name: text.encode()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_lie_about_hash, "the sha256 of 'helper/__init__.py' does not match .*RECORD"),
        (_lie_about_size, "says 'helper/__init__.py' has size '[0-9]+', but it has"),
        (_unlisted, "'helper/extra.py' is not listed in"),
        (_listed_but_missing, "lists 'helper/__init__.py', which is not in the wheel"),
        (_weak_hash, "no sha256 \\(or stronger\\) hash"),
        (lambda m: with_record(m, {"../../evil.pth": b"import os"}), "escapes the install"),
        (lambda m: with_record(m, {"/etc/cron.d/x": b"* * * * * id"}), "escapes the install"),
        (lambda m: with_record(m, {"helper\\..\\..\\x.py": b"x"}), "escapes the install"),
    ],
)
def test_a_lying_or_escaping_wheel_is_refused(
    tmp_path: Path, change: Rewrite, message: str
) -> None:
    wheel = rewritten(make_wheel(tmp_path, "helper", "1.0"), change)
    with pytest.raises(InvalidArtifactError, match=message):
        check_wheel(wheel, ASKED)


def test_links_are_refused(tmp_path: Path) -> None:
    def add_link(members: dict[str, bytes]) -> dict[str, bytes]:
        return with_record(members, {"helper/passwd": b"/etc/passwd"})

    wheel = rewritten(make_wheel(tmp_path, "helper", "1.0"), add_link, links=("helper/passwd",))
    with pytest.raises(InvalidArtifactError, match="'helper/passwd' is a link"):
        check_wheel(wheel, ASKED)


def test_metadata_and_unpacked_size_limits(tmp_path: Path) -> None:
    def big_metadata(members: dict[str, bytes]) -> dict[str, bytes]:
        name = next(n for n in members if n.endswith("METADATA"))
        padded = members[name] + b"x" * 300_000
        members = {k: v for k, v in members.items() if k != name}
        return with_record(members, {name: padded})

    record_fix = rewritten(make_wheel(tmp_path, "helper", "1.0"), big_metadata)
    with pytest.raises(InvalidArtifactError, match="above the METADATA limit of 100000 bytes"):
        check_wheel(record_fix, ASKED, WheelLimits(max_metadata_bytes=100_000))
    big = make_wheel(tmp_path / "b", "helper", "1.0", files={"helper/blob.py": "0" * 50_000})
    with pytest.raises(InvalidArtifactError, match="unpacks to more than the limit of 20000"):
        check_wheel(big, ASKED, WheelLimits(max_unpacked_bytes=20_000))


def test_publish_refuses_before_storing_anything(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    wheel = make_wheel(tmp_path / "in", "numpy", "99.0")
    with pytest.raises(InvalidArtifactError, match="project 'numpy'"):
        publish(
            store,
            environment="cpu",
            request_key="r",
            wheel=wheel,
            manifest={},
            expected=ASKED,
        )
    assert list(store.list("")) == []
    assert lookup(store, "cpu", "r") is None


def test_expected_identity_from_the_source(tmp_path: Path) -> None:
    req = parse_request({"source": {"kind": "requirement", "requirement": "Helper==1.0"}})
    assert expected_identity(req, tmp_path) == ASKED
    upload = parse_request({"source": {"kind": "archive", "path": "helper-1.0.tar.gz"}})
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: real-name\nVersion: 2.0\n")
    assert expected_identity(upload, tmp_path) == Expected(
        "real-name", "2.0", "the sdist's PKG-INFO"
    )
    (tmp_path / "PKG-INFO").unlink()
    assert expected_identity(upload, tmp_path).project == "helper"  # the file name, at least
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "tree"\ndynamic = ["version"]\n')
    assert expected_identity(upload, tmp_path) == Expected("tree", None, "pyproject.toml")
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / "PKG-INFO").symlink_to("/etc/os-release")  # a link is not read
    assert expected_identity(upload, tmp_path).origin == "the sdist's file name"
