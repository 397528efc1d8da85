"""The index catalog: what the pages list, kept in a database the publisher writes.

`Catalog` is the swap point (one implementation today, `SqlCatalog`, on SQLite or PostgreSQL;
every implementation passes the conformance test in tests/integration/test_catalog_conformance.py).
The store stays the source of truth: publish writes the row right after the manifest commits,
`reindex` rebuilds the rows from the manifests, and a row that lags its manifest is repaired by
either. Every page question is one query; nothing here lists the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from typing import Protocol

from service.artifacts import Artifact
from service.index.model import CatalogFile, EnvironmentIndex


class Catalog(Protocol):
    def ready(self) -> None:
        """Return when the catalog can answer; `CatalogError` while it cannot."""

    def environment_names(self) -> list[str]:
        """Every environment with a published file, sorted."""

    def generation(self, environment: str) -> int:
        """A number that changes whenever anything listed in the environment changes (in any
        process): the key of its cached pages; `UnknownEnvironmentError`."""

    def project_names(self, environment: str) -> list[str]:
        """The projects of one environment, sorted; `UnknownEnvironmentError` if it has none."""

    def all_project_names(self) -> list[str]:
        """Every project of every environment, sorted, once each."""

    def project_files(self, environment: str, project: str) -> tuple[CatalogFile, ...] | None:
        """The files a project page lists (`model.listed`), None for a project the environment
        lacks; `UnknownEnvironmentError` for an environment with nothing published."""

    def environment(self, environment: str) -> EnvironmentIndex:
        """Every listed file of one environment, by project; `UnknownEnvironmentError`."""

    def record(self, artifact: Artifact) -> None:
        """Write (or overwrite) the row of one committed manifest: idempotent."""

    def record_many(self, files: Iterable[CatalogFile]) -> int:
        """Write many rows at once (reindex); returns how many."""

    def prune(self, keep: Set[tuple[str, str]], *, published_before_us: int) -> int:
        """Remove the rows of (environment, request key) not in `keep` that were published
        before `published_before_us` (rows newer than a reindex's listing stay); returns how
        many went."""

    def set_yanked(self, environment: str, request_key: str, reason: str | None) -> bool:
        """Yank a file (PEP 592; `reason` may be empty) or, with None, unyank it; the catalog's
        own state, kept through publish and reindex. False if there is no such file."""

    def filled(self) -> bool:
        """Whether the catalog was ever filled from the store (by `reindex`)."""

    def mark_filled(self) -> None:
        """Note that a reindex has completed."""
