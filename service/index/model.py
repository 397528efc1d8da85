"""What an index page is made of: the published files of one environment, by project.

A file on a page is a `CatalogFile`: the facts of one committed manifest that the pages carry
(its PEP 658 metadata at `wheel_key + ".metadata"`), as the catalog's row holds them. One record
from the manifest to the row to the page, so a page from the catalog is the page of the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from service import layout
from service.artifacts import Artifact


@dataclass(frozen=True)
class CatalogFile:
    """One published wheel as the index lists it."""

    environment: str
    request_key: str
    project: str
    filename: str
    version: str
    sha256: str
    size: int
    metadata_sha256: str
    requires_python: str | None
    published_at: datetime
    verified_json: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    #: where its signed provenance lies (None: published before there was any)
    provenance_key: str | None = None

    @classmethod
    def of(cls, item: Artifact) -> CatalogFile:
        verified = item.verified
        return cls(
            environment=item.environment,
            request_key=item.request_key,
            project=item.project,
            filename=item.filename,
            version=item.version,
            sha256=item.sha256,
            size=item.size,
            metadata_sha256=item.metadata_sha256,
            requires_python=item.requires_python,
            published_at=item.published_at,
            verified_json=json.dumps(verified) if verified else None,
            provenance_key=item.provenance_key,
        )

    @property
    def verified(self) -> dict[str, Any] | None:
        """What verify proved of the wheel (`verified_summary`), in the manifest's key order."""
        found: dict[str, Any] | None = (
            json.loads(self.verified_json) if self.verified_json else None
        )
        return found

    @property
    def wheel_key(self) -> str:
        return layout.wheel_key(self.sha256, self.filename)

    @property
    def metadata_key(self) -> str:
        return layout.metadata_key(self.sha256, self.filename)

    def url(self, files_prefix: str) -> str:
        """The wheel's link: `files_prefix` + its key, percent-encoded (`+` becomes `%2B`)."""
        return files_prefix + quote(self.wheel_key, safe="/")

    def provenance_url(self, files_prefix: str) -> str | None:
        """Its provenance's link, as PEP 740's `provenance` field names it."""
        key = self.provenance_key
        return files_prefix + quote(key, safe="/") if key else None


@dataclass(frozen=True)
class EnvironmentIndex:
    """The projects of one environment: normalized name -> files sorted by filename."""

    name: str
    projects: Mapping[str, tuple[CatalogFile, ...]]

    def files(self) -> list[CatalogFile]:
        return [f for name in sorted(self.projects) for f in self.projects[name]]


def build_environment_index(name: str, files: Iterable[CatalogFile]) -> EnvironmentIndex:
    """Group files by project. Of two files with one filename (the same wheel name built with
    other settings), the one published last is listed."""
    projects: dict[str, list[CatalogFile]] = {}
    for item in listed(files):
        projects.setdefault(item.project, []).append(item)
    return EnvironmentIndex(name=name, projects={p: tuple(f) for p, f in sorted(projects.items())})


def listed(files: Iterable[CatalogFile]) -> list[CatalogFile]:
    """The files a page lists, sorted by filename: of one filename, the one published last."""
    by_filename: dict[str, CatalogFile] = {}
    for item in files:
        seen = by_filename.get(item.filename)
        if seen is None or _published(item) >= _published(seen):
            by_filename[item.filename] = item
    return [by_filename[name] for name in sorted(by_filename)]


def sorted_versions(files: Iterable[CatalogFile]) -> list[str]:
    versions = {f.version for f in files}
    return sorted(versions, key=_version_key)


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def _published(item: CatalogFile) -> tuple[datetime, str]:
    return (item.published_at, item.wheel_key)
