"""Same request, same bytes: publish stores a wheel whose bytes do not depend on when or in which
order the backend wrote it, and the manifest of a rebuild says whether it reproduced them."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from service.artifacts import lookup, publish
from service.artifacts.checks import Expected, check_wheel
from service.artifacts.normalize import normalize_wheel
from service.layout import manifest_key
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel

ENV = "cpu-py311"


def _rewritten(wheel: Path, dest: Path, when: tuple[int, ...], reverse: bool, mode: int) -> Path:
    """The same members as `wheel`, dated `when`, in another order, with other modes."""
    dest.mkdir(parents=True)
    out = dest / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(out, "w") as target:
        members = sorted(source.infolist(), key=lambda m: m.filename, reverse=reverse)
        for member in members:
            info = zipfile.ZipInfo(member.filename, when)  # type: ignore[arg-type]
            info.external_attr = mode << 16
            target.writestr(info, source.read(member), compress_type=zipfile.ZIP_STORED)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_times_modes_and_order_of_the_build_leave_no_trace(tmp_path: Path) -> None:
    files = {"ext/__init__.py": "X = 1\n", "ext/tool.sh": "#!/bin/sh\n", "ext/a/b.py": ""}
    wheel = make_wheel(tmp_path / "built", "ext", "1.0", files=files)
    one = _rewritten(wheel, tmp_path / "one", (2026, 11, 26, 17, 0, 0), False, 0o100664)
    two = _rewritten(wheel, tmp_path / "two", (2025, 1, 2, 3, 4, 6), True, 0o100600)
    assert _sha(one) != _sha(two)
    a = normalize_wheel(one, tmp_path / "n1" / one.name, 1_700_000_000)
    b = normalize_wheel(two, tmp_path / "n2" / two.name, 1_700_000_000)
    assert _sha(a) == _sha(b)
    check_wheel(a, Expected(project="ext", version="1.0"))
    with zipfile.ZipFile(a) as zf:
        names = zf.namelist()
        assert names[-1].endswith(".dist-info/RECORD")
        assert names.index("ext/__init__.py") < names.index("ext-1.0.dist-info/METADATA")
        stamps = {info.date_time for info in zf.infolist()}
        assert stamps == {(2023, 11, 14, 22, 13, 20)}  # 1_700_000_000 in UTC
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in zf.infolist()}
        assert set(modes.values()) == {0o644}
    # another SOURCE_DATE_EPOCH is another wheel; none at all is 1980-01-01
    c = normalize_wheel(one, tmp_path / "n3" / one.name, None)
    with zipfile.ZipFile(c) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_a_rebuild_says_whether_it_reproduced_the_stored_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    wheel = make_wheel(tmp_path / "built", "ext", "1.0")
    first = publish(
        store, environment=ENV, request_key="req", wheel=wheel, manifest={},
        source_date_epoch=1_700_000_000,
    )  # fmt: skip
    assert first.manifest["reproducibility"]["reproduced"] is None  # nothing to compare with
    store.delete(manifest_key(ENV, "req"))  # the index lost it: the request is built again
    again = _rewritten(wheel, tmp_path / "again", (2030, 1, 1, 0, 0, 0), True, 0o100600)
    second = publish(
        store, environment=ENV, request_key="req", wheel=again, manifest={},
        source_date_epoch=1_700_000_000,
    )  # fmt: skip
    assert second.sha256 == first.sha256
    assert second.manifest["reproducibility"] == {
        "source_date_epoch": 1_700_000_000,
        "earlier_sha256": [first.sha256],
        "reproduced": True,
    }
    store.delete(manifest_key(ENV, "req"))
    other = make_wheel(tmp_path / "other", "ext", "1.0", files={"ext/__init__.py": "X = 2\n"})
    third = publish(
        store, environment=ENV, request_key="req", wheel=other, manifest={},
        source_date_epoch=1_700_000_000,
    )  # fmt: skip
    assert third.manifest["reproducibility"]["reproduced"] is False
    assert lookup(store, ENV, "req") == third
