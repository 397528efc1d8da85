"""Inspecting, pinning and publishing one wheel (local store in a temp dir; no services)."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest

from service.artifacts import (
    Artifact,
    inspect_wheel,
    lookup,
    pin_metadata,
    pin_wheel,
    publish,
    read_manifest,
)
from service.errors import InvalidArtifactError, InvalidRequestError, ObjectExistsError
from service.layout import parse_manifest_key
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel, record_hash

ENV = "cpu-py311-torch2.13.0-0123abcd"


def test_inspect_reads_name_version_and_requires_python(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "Fake_Ext", "1.0.0+cu128", requires_python=">=3.9,<4")
    info = inspect_wheel(wheel)
    assert (info.filename, info.project, info.version) == (wheel.name, "fake-ext", "1.0.0+cu128")
    assert info.requires_python == ">=3.9,<4"
    assert info.metadata_path == "fake_ext-1.0.0+cu128.dist-info/METADATA"
    assert info.metadata.startswith(b"Metadata-Version: 2.1\nName: Fake_Ext\n")


def test_inspect_accepts_equivalent_spellings(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path, "fake-ext", "1.0", metadata_name="Fake.Ext", metadata_version="1.0.0"
    )
    assert inspect_wheel(wheel).project == "fake-ext"


def test_inspect_refuses_bad_filename(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-wheel.whl"
    bad.write_bytes(b"")
    with pytest.raises(InvalidArtifactError, match="not a valid wheel filename"):
        inspect_wheel(bad)


def test_inspect_refuses_non_zip_and_truncated(tmp_path: Path) -> None:
    good = make_wheel(tmp_path / "good", "pkg", "1.0")
    garbage = tmp_path / "garbage" / good.name
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is no zip archive" * 10)
    with pytest.raises(InvalidArtifactError, match="not a readable zip"):
        inspect_wheel(garbage)
    truncated = tmp_path / "truncated" / good.name
    truncated.parent.mkdir()
    truncated.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(InvalidArtifactError, match="not a readable zip"):
        inspect_wheel(truncated)


def test_inspect_refuses_corrupt_member(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg", "1.0", files={"pkg.py": "X = 1\n" * 50})
    data = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as archive:
        member = archive.getinfo("pkg.py")
    start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    data[start + 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    with pytest.raises(InvalidArtifactError, match="corrupt"):
        inspect_wheel(wheel)


def test_inspect_names_the_mismatch(tmp_path: Path) -> None:
    renamed = make_wheel(tmp_path / "a", "pkg", "1.0", metadata_name="other-pkg")
    with pytest.raises(InvalidArtifactError, match="'other-pkg' but the filename says 'pkg'"):
        inspect_wheel(renamed)
    reversioned = make_wheel(tmp_path / "b", "pkg", "1.0", metadata_version="1.1")
    with pytest.raises(InvalidArtifactError, match=r"version '1\.1' but the filename says 1\.0"):
        inspect_wheel(reversioned)


def test_inspect_refuses_missing_metadata_or_record(tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg.py", "")
    with pytest.raises(InvalidArtifactError, match=r"exactly one \.dist-info"):
        inspect_wheel(wheel)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg-1.0.dist-info/METADATA", "Name: pkg\nVersion: 1.0\n")
    with pytest.raises(InvalidArtifactError, match="RECORD is missing"):
        inspect_wheel(wheel)


def test_inspect_refuses_invalid_requires_python(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg", "1.0", requires_python="three point eight")
    with pytest.raises(InvalidArtifactError, match="Requires-Python"):
        inspect_wheel(wheel)


METADATA = b"""\
Metadata-Version: 2.1
Name: ext
Version: 1.0
Requires-Dist: numpy
Requires-Dist: Torch>=2.0
Requires-Dist: torch[opt]<3; extra == "full"

Requires-Dist: torch (this is the description, not a header)
"""


def test_pin_metadata_pins_every_torch_line_and_keeps_the_rest() -> None:
    pinned = pin_metadata(METADATA, {"torch": "2.13.0"}).decode()
    assert pinned.splitlines() == [
        "Metadata-Version: 2.1",
        "Name: ext",
        "Version: 1.0",
        "Requires-Dist: numpy",
        "Requires-Dist: Torch==2.13.0",
        'Requires-Dist: torch[opt]==2.13.0; extra == "full"',
        "",
        "Requires-Dist: torch (this is the description, not a header)",
    ]


def test_pin_metadata_adds_missing_requirements() -> None:
    only_conditional = b'Name: ext\nVersion: 1\nRequires-Dist: torch; extra == "x"\n\nBody\n'
    pinned = pin_metadata(only_conditional, {"torch": "2.13.0", "triton": "3.5.0"})
    assert pinned == (
        b'Name: ext\nVersion: 1\nRequires-Dist: torch==2.13.0; extra == "x"\n'
        b"Requires-Dist: torch==2.13.0\nRequires-Dist: triton==3.5.0\n\nBody\n"
    )
    assert pin_metadata(b"Name: ext\nVersion: 1\n", {"torch": "2.13.0"}) == (
        b"Name: ext\nVersion: 1\nRequires-Dist: torch==2.13.0\n"
    )


def test_pin_metadata_refuses_a_bad_pin() -> None:
    with pytest.raises(InvalidRequestError, match="ABI pin"):
        pin_metadata(METADATA, {"torch": "not a version!"})


def test_pin_wheel_updates_record_and_keeps_other_members(tmp_path: Path) -> None:
    original = make_wheel(tmp_path / "in", "ext", "1.0", requires=["torch>=2", "numpy"])
    pinned = pin_wheel(original, {"torch": "2.13.0"}, tmp_path / "out")
    assert pinned.name == original.name
    assert pinned.parent == tmp_path / "out"
    info = inspect_wheel(pinned)
    assert b"Requires-Dist: torch==2.13.0\nRequires-Dist: numpy\n" in info.metadata
    with zipfile.ZipFile(original) as before, zipfile.ZipFile(pinned) as after:
        assert before.namelist() == after.namelist()
        for old, new in zip(before.infolist(), after.infolist(), strict=True):
            assert (old.date_time, old.compress_type) == (new.date_time, new.compress_type)
            if old.filename not in (info.metadata_path, info.record_path):
                assert before.read(old) == after.read(new)
        rows = list(csv.reader(after.read(info.record_path).decode().splitlines()))
        for path, digest, size in rows:
            if path == info.record_path:
                assert (digest, size) == ("", "")
                continue
            content = after.read(path)
            assert (digest, int(size)) == (record_hash(content), len(content))


def test_pin_wheel_needs_another_folder(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "ext", "1.0")
    with pytest.raises(ValueError, match="destination"):
        pin_wheel(wheel, {"torch": "2.13.0"}, tmp_path)


def test_publish_and_lookup_on_a_local_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    wheel = make_wheel(tmp_path / "in", "ext", "1.0", requires=["torch"])
    artifact = publish(
        store,
        environment=ENV,
        request_key="req-1",
        wheel=wheel,
        manifest={"stages": {"build": 12.5}},
        log_key="logs/builds/b1.log",
        abi_pins={"torch": "2.13.0"},
    )
    manifest = json.loads(store.get(f"builds/{ENV}/req-1.json"))
    assert manifest["stages"] == {"build": 12.5}
    assert manifest["wheel"]["abi_pins"] == {"torch": "2.13.0"}
    assert manifest["log"] == {"key": "logs/builds/b1.log"}
    assert read_manifest(store.get(artifact.manifest_key)) == artifact
    assert lookup(store, ENV, "req-1") == artifact
    assert artifact.summary()["wheel_key"] == f"wheels/{artifact.sha256}/{wheel.name}"
    assert parse_manifest_key(artifact.manifest_key) == (ENV, "req-1")
    assert wheel.read_bytes() == (tmp_path / "in" / wheel.name).read_bytes()  # input untouched


@pytest.mark.parametrize(
    ("environment", "request_key", "manifest", "message"),
    [
        ("Bad Env", "req", {}, "environment name"),
        ("../etc", "req", {}, "environment name"),
        (ENV, "../req", {}, "request key"),
        (ENV, "req", {"when": object()}, "not JSON"),
        (ENV, "req", {"wheel": {"sha256": "ab"}}, "holds wheel: publish alone writes them"),
        (ENV, "req", {"log": {}, "reproducibility": {}}, "holds log, reproducibility"),
    ],
)
def test_publish_refuses_bad_inputs_before_writing(
    tmp_path: Path, environment: str, request_key: str, manifest: dict[str, object], message: str
) -> None:
    store = LocalStore(tmp_path / "store")
    wheel = make_wheel(tmp_path / "in", "ext", "1.0")
    with pytest.raises(InvalidRequestError, match=message):
        publish(
            store,
            environment=environment,
            request_key=request_key,
            wheel=wheel,
            manifest=manifest,
        )
    assert list(store.list("")) == []


def test_publish_refuses_a_content_address_holding_other_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    wheel = make_wheel(tmp_path / "in", "ext", "1.0")
    # what publish stores (the same bytes in any store)
    digest = publish(LocalStore(tmp_path / "other"), environment=ENV, request_key="req",
                     wheel=wheel, manifest={}).sha256  # fmt: skip
    store.put(f"wheels/{digest}/{wheel.name}", b"tampered")
    with pytest.raises(ObjectExistsError, match="other content"):
        publish(store, environment=ENV, request_key="req", wheel=wheel, manifest={})
    assert lookup(store, ENV, "req") is None


def test_malformed_manifests_are_invalid_artifacts() -> None:
    for body in (b"not json", b"[]", b"{}", b'{"wheel": {"filename": "x.whl"}}'):
        with pytest.raises(InvalidArtifactError, match="manifest"):
            read_manifest(body)
    with pytest.raises(InvalidArtifactError):
        Artifact.from_manifest({"wheel": {"size": "many"}})
