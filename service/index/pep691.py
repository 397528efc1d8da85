"""JSON pages of the simple repository API (PEP 691, version 1.1 with PEP 700 fields)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

from service.index.model import CatalogFile, sorted_versions

API_VERSION = "1.1"


def names_page(names: Iterable[str], *, key: str = "projects") -> bytes:
    return _dump({key: [{"name": name} for name in names]})


def project_page(
    project: str, files: Sequence[CatalogFile], files_prefix: str, files_url: str | None = None
) -> bytes:
    return _dump(
        {
            "name": project,
            "versions": sorted_versions(files),
            "files": [file_entry(f, files_prefix, files_url) for f in files],
        }
    )


def file_entry(
    item: CatalogFile, files_prefix: str, files_url: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": item.filename,
        "url": item.url(files_prefix),
        "hashes": {"sha256": item.sha256},
        "size": item.size,
    }
    if item.requires_python:
        entry["requires-python"] = item.requires_python
    metadata: dict[str, str] | bool = (
        {"sha256": item.metadata_sha256} if item.metadata_sha256 else False
    )
    entry["core-metadata"] = metadata
    entry["dist-info-metadata"] = metadata
    if item.yanked:  # PEP 592: a reason, or true
        entry["yanked"] = item.yanked_reason or True
    entry["upload-time"] = item.published_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    provenance = item.provenance_url(files_url) if files_url else None
    if provenance:  # PEP 740's field, an absolute URL; a DSSE envelope there (README)
        entry["provenance"] = provenance
    verified = item.verified
    if verified:  # PEP 691 keeps keys with a leading underscore for the index's own use
        entry["_wheelwright"] = {"verified": verified}
    return entry


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps({"meta": {"api-version": API_VERSION}, **data}).encode()
