"""Local version labels: `flash_attn-2.8.3+cu130torch2.13-...whl`, like flash-attn's releases.

A label names the environment in the version itself, so wheels of several environments can sit
side by side in one folder or find-links page and `pip list` tells which one is installed.
`relabel_wheel` renames the wheel, its `.dist-info` (and `.data`) folder, the METADATA `Version`
and every RECORD row consistently; all other members keep their bytes.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

from packaging.version import InvalidVersion, Version

from service.artifacts.pins import record_hash
from service.artifacts.wheelfile import inspect_wheel
from service.errors import InvalidRequestError
from service.models import LOCAL_LABEL_RE as LABEL_RE


def labelled_version(version: str, label: str) -> str:
    """`2.8.3` + `cu130torch2.13` -> `2.8.3+cu130torch2.13` (a local part gets `.label`)."""
    if not LABEL_RE.match(label):
        raise InvalidRequestError(
            f"local version label {label!r} must be lowercase letters and digits, dot-separated"
        )
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise InvalidRequestError(f"{version!r} is not a version to label") from None
    return f"{parsed}.{label}" if parsed.local else f"{parsed}+{label}"


def relabel_wheel(wheel: Path, label: str, dest_dir: Path) -> Path:
    """Write the wheel with its version labelled into `dest_dir`; return its new path."""
    info = inspect_wheel(wheel)
    new_version = labelled_version(info.version, label)
    dist_info = info.metadata_path.split("/", 1)[0]
    distribution = dist_info.removesuffix(".dist-info").rsplit("-", 1)[0]
    renames = {
        f"{distribution}-{info.version}.dist-info/": f"{distribution}-{new_version}.dist-info/",
        f"{distribution}-{info.version}.data/": f"{distribution}-{new_version}.data/",
    }
    parts = wheel.name.removesuffix(".whl").split("-")
    parts[1] = new_version
    target = dest_dir / ("-".join(parts) + ".whl")
    dest_dir.mkdir(parents=True, exist_ok=True)
    metadata = _with_version(info.metadata, new_version)
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w") as out:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == info.metadata_path:
                data = metadata
            elif member.filename == info.record_path:
                data = _record(data, renames, _renamed(info.metadata_path, renames), metadata)
            renamed = zipfile.ZipInfo(_renamed(member.filename, renames), member.date_time)
            renamed.compress_type = member.compress_type
            renamed.external_attr = member.external_attr
            out.writestr(renamed, data)
    inspect_wheel(target)  # the name, METADATA and RECORD agree again
    return target


def _renamed(path: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        if path.startswith(old):
            return new + path[len(old) :]
    return path


def _with_version(metadata: bytes, version: str) -> bytes:
    text = metadata.decode("utf-8")
    head, sep, body = text.partition("\n\n")
    head = re.sub(r"(?mi)^Version:[ \t]*\S+[ \t]*$", f"Version: {version}", head, count=1)
    return (head + sep + body).encode("utf-8")


def _record(record: bytes, renames: dict[str, str], metadata_path: str, metadata: bytes) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in csv.reader(io.StringIO(record.decode("utf-8"))):
        if not row:
            continue
        path = _renamed(row[0], renames)
        if path == metadata_path:
            writer.writerow([path, record_hash(metadata), len(metadata)])
        else:
            writer.writerow([path, *row[1:]])
    return out.getvalue().encode("utf-8")
