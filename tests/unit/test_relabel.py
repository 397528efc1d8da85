"""Local version labels: the wheel, its dist-info, METADATA and RECORD all agree afterwards."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest

from service.artifacts import inspect_wheel, publish
from service.artifacts.relabel import labelled_version, relabel_wheel
from service.errors import InvalidRequestError
from service.models import parse_request
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel, record_hash
from worker.pipeline import local_label


def test_labelled_versions() -> None:
    assert labelled_version("2.8.3", "cu130torch2.13") == "2.8.3+cu130torch2.13"
    assert labelled_version("1.0+local", "cpu") == "1.0+local.cpu"
    with pytest.raises(InvalidRequestError, match="lowercase letters and digits"):
        labelled_version("1.0", "Has-Dash")


def test_relabelled_wheel_is_consistent(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", "fake-ext", "2.0.0", requires=["torch"])
    out = relabel_wheel(wheel, "cu130torch2.13", tmp_path / "out")

    assert out.name == "fake_ext-2.0.0+cu130torch2.13-py3-none-any.whl"
    info = inspect_wheel(out)  # raises if name, METADATA and RECORD disagree
    assert info.version == "2.0.0+cu130torch2.13"
    assert info.metadata_path == "fake_ext-2.0.0+cu130torch2.13.dist-info/METADATA"
    with zipfile.ZipFile(out) as zf, zipfile.ZipFile(wheel) as original:
        assert zf.read("fake_ext/__init__.py") == original.read("fake_ext/__init__.py")
        record = zf.read("fake_ext-2.0.0+cu130torch2.13.dist-info/RECORD").decode()
        rows = {row[0]: row for row in csv.reader(io.StringIO(record)) if row}
        for name in zf.namelist():
            assert name in rows, f"RECORD misses {name}"
            if rows[name][1]:
                assert rows[name][1] == record_hash(zf.read(name))
    assert b"Requires-Dist: torch" in info.metadata


def test_publish_labels_then_pins(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", "fake-ext", "2.0.0", requires=["torch"])
    artifact = publish(
        LocalStore(tmp_path / "store"),
        environment="cpu-x",
        request_key="k1",
        wheel=wheel,
        manifest={},
        abi_pins={"torch": "2.13.0"},
        local_label="cputorch2.13",
    )
    assert artifact.filename == "fake_ext-2.0.0+cputorch2.13-py3-none-any.whl"
    stored = tmp_path / "store" / artifact.wheel_key
    assert b"Requires-Dist: torch==2.13.0" in inspect_wheel(stored).metadata


def test_auto_label_names_target_and_pins() -> None:
    source = {"kind": "requirement", "requirement": "flash-attn==2.8.3"}
    cuda = parse_request({"source": source, "target": {"kind": "cuda"}, "local_label": "auto"})
    assert local_label(cuda, {"torch": "2.13.0"}) == "cu130torch2.13"
    cpu = parse_request({"source": source, "local_label": "auto"})
    assert local_label(cpu, {}) == "cpu"
    plain = parse_request({"source": source})
    assert local_label(plain, {"torch": "2.13.0"}) is None
