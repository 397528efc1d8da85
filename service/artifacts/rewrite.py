"""Rewriting a wheel: new METADATA, optionally renamed folders, RECORD kept true.

Used by the ABI pins (METADATA only) and by local version labels (METADATA and the
`.dist-info`/`.data` folder names). Every other member keeps its exact bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

from service.artifacts.wheelfile import WheelInfo
from service.errors import InvalidArtifactError


def record_hash(data: bytes) -> str:
    """`sha256=<urlsafe base64, no padding>` as RECORD writes it."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def rewrite_wheel(
    wheel: Path,
    info: WheelInfo,
    target: Path,
    metadata: bytes,
    renames: Mapping[str, str] | None = None,
) -> Path:
    """Write `target`: `wheel` with `metadata` and its path prefixes renamed per `renames`."""
    renames = renames or {}
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w") as out:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == info.metadata_path:
                data = metadata
            elif member.filename == info.record_path:
                data = _record(data, info, metadata, renames, wheel.name)
            renamed = zipfile.ZipInfo(_renamed(member.filename, renames), member.date_time)
            renamed.compress_type = member.compress_type
            renamed.external_attr = member.external_attr
            out.writestr(renamed, data)
    return target


def _renamed(path: str, renames: Mapping[str, str]) -> str:
    for old, new in renames.items():
        if path.startswith(old):
            return new + path[len(old) :]
    return path


def _record(
    record: bytes, info: WheelInfo, metadata: bytes, renames: Mapping[str, str], filename: str
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    listed = False
    for row in csv.reader(io.StringIO(record.decode("utf-8"))):
        if not row:
            continue
        if row[0] == info.metadata_path:
            listed = True
            writer.writerow([_renamed(row[0], renames), record_hash(metadata), len(metadata)])
        else:
            writer.writerow([_renamed(row[0], renames), *row[1:]])
    if not listed:
        raise InvalidArtifactError(f"{filename}: RECORD does not list {info.metadata_path}")
    return out.getvalue().encode("utf-8")
