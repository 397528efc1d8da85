"""Every page the index serves, in the format the client negotiated. Pure: data in, bytes out.

Links are relative (`files_prefix`, such as `../../../files/`), so the index works behind any
path prefix a proxy adds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from service.index import pep503, pep691
from service.index.model import CatalogFile, EnvironmentIndex
from service.index.negotiate import HTML, HTML_V1, JSON_V1

#: What the simple pages can be rendered as (for a 406 answer).
OFFERED = (JSON_V1, HTML_V1, HTML)


@dataclass(frozen=True)
class Page:
    body: bytes
    media_type: str

    @property
    def content_type(self) -> str:
        return (
            self.media_type if self.media_type == JSON_V1 else f"{self.media_type}; charset=utf-8"
        )

    @cached_property
    def etag(self) -> str:
        """A strong validator of this representation: the hash of its type and body."""
        digest = hashlib.sha256(self.content_type.encode() + b"\n" + self.body).hexdigest()
        return f'"{digest[:32]}"'


def environments_page(names: Sequence[str], media_type: str) -> Page:
    """`/simple/`: the build environments, each an index of its own."""
    if media_type == JSON_V1:
        return Page(pep691.names_page(names, key="environments"), media_type)
    return _html(pep503.names_page("Build environments", names), media_type)


def projects_page(environment: str, projects: Sequence[str], media_type: str) -> Page:
    """`/simple/<environment>/`: the projects of one environment (PEP 503 root)."""
    if media_type == JSON_V1:
        return Page(pep691.names_page(projects), media_type)
    return _html(pep503.names_page(f"Simple index: {environment}", projects), media_type)


def project_page(
    project: str,
    files: Sequence[CatalogFile],
    media_type: str,
    files_prefix: str,
    files_url: str | None = None,
) -> Page:
    """`/simple/<environment>/<project>/`: `files` as the catalog lists them (by filename).
    `files_url` is the absolute form of `files_prefix`, for the provenance links (PEP 740)."""
    if media_type == JSON_V1:
        return Page(pep691.project_page(project, files, files_prefix, files_url), media_type)
    return _html(pep503.project_page(project, files, files_prefix, files_url), media_type)


def find_links_page(index: EnvironmentIndex, files_prefix: str) -> Page:
    """`/find-links/<environment>/`: every wheel of the environment on one flat HTML page."""
    links = (pep503.file_link(f, files_prefix) for f in index.files())
    return _html(pep503.links_page(f"Wheels for {index.name}", links), HTML)


def _html(text: str, media_type: str) -> Page:
    return Page(text.encode(), media_type if media_type in (HTML, HTML_V1) else HTML)
