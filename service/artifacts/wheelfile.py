"""Look inside one wheel: is it whole, and does it say what its filename says?"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from packaging.metadata import parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from service.errors import InvalidArtifactError


@dataclass(frozen=True)
class WheelInfo:
    """What the index needs to know about a wheel, read from the wheel itself."""

    filename: str
    project: str
    version: str
    requires_python: str | None
    metadata_path: str
    record_path: str
    metadata: bytes


def inspect_wheel(path: Path) -> WheelInfo:
    """Check that `path` is a whole wheel whose METADATA matches its filename.

    Raises `InvalidArtifactError` for a bad filename, a file that is not a zip or is truncated, a
    member whose CRC does not match, a missing or ambiguous `.dist-info`, METADATA that cannot be
    parsed, or a Name/Version that differs (after normalization) from the filename's.
    """
    filename = path.name
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise InvalidArtifactError(f"{filename!r} is not a valid wheel filename: {exc}") from None
    try:
        with zipfile.ZipFile(path) as archive:
            corrupt = archive.testzip()
            if corrupt is not None:
                raise InvalidArtifactError(f"{filename}: member {corrupt!r} is corrupt (bad CRC)")
            dist_info = _dist_info(archive.namelist(), filename, name)
            metadata = archive.read(f"{dist_info}/METADATA")
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise InvalidArtifactError(
            f"{filename} is not a readable zip archive (truncated or corrupt?): {exc}"
        ) from None
    except OSError as exc:
        raise InvalidArtifactError(f"cannot read wheel {path}: {exc}") from None
    raw, _unparsed = parse_email(metadata)
    meta_name, meta_version = raw.get("name"), raw.get("version")
    if not meta_name or not meta_version:
        raise InvalidArtifactError(f"{filename}: METADATA has no Name or no Version")
    if canonicalize_name(meta_name) != name:
        raise InvalidArtifactError(
            f"{filename}: METADATA names project {meta_name!r} but the filename says {name!r}"
        )
    try:
        same_version = Version(meta_version) == version
    except InvalidVersion:
        same_version = False
    if not same_version:
        raise InvalidArtifactError(
            f"{filename}: METADATA has version {meta_version!r} but the filename says {version}"
        )
    requires_python = raw.get("requires_python")
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            raise InvalidArtifactError(
                f"{filename}: Requires-Python {requires_python!r} is not a valid specifier"
            ) from None
    return WheelInfo(
        filename=filename,
        project=name,
        version=str(version),
        requires_python=requires_python,
        metadata_path=f"{dist_info}/METADATA",
        record_path=f"{dist_info}/RECORD",
        metadata=metadata,
    )


def _dist_info(names: list[str], filename: str, project: str) -> str:
    """The one top-level `<name>-<version>.dist-info` folder that holds METADATA and RECORD."""
    candidates = {
        parts[0]
        for parts in (n.split("/") for n in names)
        if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA"
    }
    if len(candidates) != 1:
        found = ", ".join(sorted(candidates)) or "none"
        raise InvalidArtifactError(
            f"{filename}: expected exactly one .dist-info folder with METADATA (found {found})"
        )
    dist_info = candidates.pop()
    folder_name = dist_info.removesuffix(".dist-info").rpartition("-")[0]
    if canonicalize_name(folder_name) != project:
        raise InvalidArtifactError(
            f"{filename}: its metadata folder {dist_info!r} belongs to another project"
        )
    if f"{dist_info}/RECORD" not in names:
        raise InvalidArtifactError(f"{filename}: {dist_info}/RECORD is missing")
    return dist_info
