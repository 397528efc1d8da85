"""A built wheel is data from a build that ran someone else's code: check it before publishing.

`check_wheel` ties the wheel to what was asked (its normalized name and version against the
requested project, or the fetched sdist's own metadata) and checks it is what it says: every
member listed in RECORD with a matching sha256 and size, no member that escapes (absolute, `..`,
backslashes), no links, no duplicates, METADATA and the total unpacked size under their limits.
Each refusal is an `InvalidArtifactError` that says which check failed.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from service.errors import InvalidArtifactError

RECORD_SIGNATURES = (".dist-info/RECORD.jws", ".dist-info/RECORD.p7s")
STRONG_HASHES = ("sha256", "sha384", "sha512")


@dataclass(frozen=True)
class Expected:
    """What the request says the wheel must be; None where the source does not say."""

    project: str | None = None
    version: str | None = None
    origin: str = "the request"


@dataclass(frozen=True)
class WheelLimits:
    max_metadata_bytes: int = 1024**2
    max_unpacked_bytes: int = 8 * 1024**3
    max_members: int = 200_000


def check_wheel(path: Path, expected: Expected, limits: WheelLimits | None = None) -> None:
    """Raise `InvalidArtifactError` naming the first thing about `path` that is not allowed."""
    limits = limits or WheelLimits()
    filename = path.name
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise InvalidArtifactError(f"{filename!r} is not a valid wheel filename: {exc}") from None
    _check_identity(filename, name, version, expected)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_members(filename, members, limits)
            _check_record(filename, archive, members)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise InvalidArtifactError(f"{filename} is not a readable zip archive: {exc}") from None


def _check_identity(filename: str, name: str, version: Version, expected: Expected) -> None:
    if expected.project is not None and name != canonicalize_name(expected.project):
        raise InvalidArtifactError(
            f"{filename}: the wheel is for project {name!r}, but {expected.origin} is"
            f" {canonicalize_name(expected.project)!r}; refusing to publish it"
        )
    if expected.version is None:
        return
    try:
        wanted = Version(expected.version)
    except InvalidVersion:
        raise InvalidArtifactError(
            f"{expected.origin} has version {expected.version!r}, which is not a valid version"
        ) from None
    same = version == wanted or (wanted.local is None and version.public == wanted.public)
    if not same:
        raise InvalidArtifactError(
            f"{filename}: the wheel has version {version}, but {expected.origin} has"
            f" {wanted}; refusing to publish it"
        )


def _check_members(filename: str, members: list[zipfile.ZipInfo], limits: WheelLimits) -> None:
    if len(members) > limits.max_members:
        raise InvalidArtifactError(
            f"{filename}: {len(members)} members, above the limit of {limits.max_members}"
        )
    seen: set[str] = set()
    total = 0
    for member in members:
        entry = member.filename
        parts = PurePosixPath(entry).parts
        if (
            entry.startswith("/")
            or "\\" in entry
            or ".." in parts
            or (parts and ":" in parts[0])
            or "\x00" in entry
        ):
            raise InvalidArtifactError(f"{filename}: member {entry!r} escapes the install folder")
        kind = stat.S_IFMT(member.external_attr >> 16)  # 0: no type recorded, a plain file
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise InvalidArtifactError(f"{filename}: member {entry!r} is a link or special file")
        if entry in seen:
            raise InvalidArtifactError(f"{filename}: member {entry!r} appears twice")
        seen.add(entry)
        total += member.file_size
        if total > limits.max_unpacked_bytes:
            raise InvalidArtifactError(
                f"{filename}: unpacks to more than the limit of {limits.max_unpacked_bytes} bytes"
            )
        if entry.endswith(".dist-info/METADATA") and member.file_size > limits.max_metadata_bytes:
            raise InvalidArtifactError(
                f"{filename}: {entry} is {member.file_size} bytes, above the METADATA limit"
                f" of {limits.max_metadata_bytes} bytes"
            )


def _check_record(filename: str, archive: zipfile.ZipFile, members: list[zipfile.ZipInfo]) -> None:
    records = [m for m in members if _is_top_dist_info(m.filename, "RECORD")]
    if len(records) != 1:
        raise InvalidArtifactError(
            f"{filename}: expected one .dist-info/RECORD, found {len(records)}"
        )
    record_name = records[0].filename
    if records[0].file_size > 64 * 1024**2:
        raise InvalidArtifactError(f"{filename}: {record_name} is larger than 64 MiB")
    text = archive.read(record_name).decode("utf-8", "replace")
    listed: dict[str, tuple[str, str]] = {}
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        if len(row) != 3:
            raise InvalidArtifactError(f"{filename}: {record_name} has a malformed row {row!r}")
        listed[row[0]] = (row[1], row[2])
    for member in members:
        entry = member.filename
        if entry.endswith("/") or entry == record_name or entry.endswith(RECORD_SIGNATURES):
            continue
        if entry not in listed:
            raise InvalidArtifactError(f"{filename}: {entry!r} is not listed in {record_name}")
        hash_text, size_text = listed.pop(entry)
        algorithm, _, expected_digest = hash_text.partition("=")
        if algorithm not in STRONG_HASHES or not expected_digest:
            raise InvalidArtifactError(
                f"{filename}: {record_name} gives {entry!r} no sha256 (or stronger) hash"
            )
        if size_text != str(member.file_size):
            raise InvalidArtifactError(
                f"{filename}: {record_name} says {entry!r} has size {size_text!r},"
                f" but it has {member.file_size} bytes"
            )
        if _digest(archive, member, algorithm) != expected_digest:
            raise InvalidArtifactError(
                f"{filename}: the {algorithm} of {entry!r} does not match {record_name}"
            )
    missing = sorted(k for k in listed if k != record_name and not k.endswith(RECORD_SIGNATURES))
    if missing:
        raise InvalidArtifactError(
            f"{filename}: {record_name} lists {missing[0]!r}, which is not in the wheel"
        )


def _is_top_dist_info(entry: str, leaf: str) -> bool:
    parts = entry.split("/")
    return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == leaf


def _digest(archive: zipfile.ZipFile, member: zipfile.ZipInfo, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with archive.open(member) as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
