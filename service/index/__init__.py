"""The package index: PEP 503/691 pages of each build environment, from the catalog."""

from __future__ import annotations

from service.index.catalog import Catalog
from service.index.model import CatalogFile, EnvironmentIndex, build_environment_index
from service.index.negotiate import HTML, HTML_V1, JSON_V1, choose_media_type
from service.index.pages import (
    Page,
    environments_page,
    find_links_page,
    project_page,
    projects_page,
)

__all__ = [
    "HTML",
    "HTML_V1",
    "JSON_V1",
    "Catalog",
    "CatalogFile",
    "EnvironmentIndex",
    "Page",
    "build_environment_index",
    "choose_media_type",
    "environments_page",
    "find_links_page",
    "project_page",
    "projects_page",
]
