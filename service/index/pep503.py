"""HTML pages of the simple repository API (PEP 503, with PEP 592/658/714/700 attributes)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from service.index.model import CatalogFile

REPOSITORY_VERSION = "1.1"


def links_page(title: str, links: Iterable[str]) -> str:
    body = "\n".join(f"    {link}<br>" for link in links)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{REPOSITORY_VERSION}">\n'
        f"    <title>{escape(title)}</title>\n  </head>\n  <body>\n"
        f"    <h1>{escape(title)}</h1>\n{body}\n  </body>\n</html>\n"
    )


def names_page(title: str, names: Iterable[str]) -> str:
    """A list of `<a href="name/">name</a>`: the project list, or the environment list."""
    return links_page(title, (f'<a href="{escape(n)}/">{escape(n)}</a>' for n in names))


def file_link(item: CatalogFile, files_prefix: str, files_url: str | None = None) -> str:
    """One anchor: hash fragment, Requires-Python and the core-metadata hash as attributes."""
    href = f"{item.url(files_prefix)}#sha256={item.sha256}"
    attributes = [f'href="{escape(href)}"']
    if item.requires_python:
        attributes.append(f'data-requires-python="{escape(item.requires_python)}"')
    if item.metadata_sha256:
        value = f"sha256={item.metadata_sha256}"
        attributes.append(f'data-dist-info-metadata="{value}"')
        attributes.append(f'data-core-metadata="{value}"')
    if item.yanked:  # PEP 592
        attributes.append(f'data-yanked="{escape(item.yanked_reason or "")}"')
    provenance = item.provenance_url(files_url or files_prefix)
    if provenance:  # PEP 740's `data-provenance`
        attributes.append(f'data-provenance="{escape(provenance)}"')
    return f"<a {' '.join(attributes)}>{escape(item.filename)}</a>"


def project_page(
    project: str, files: Iterable[CatalogFile], files_prefix: str, files_url: str | None = None
) -> str:
    links = (file_link(f, files_prefix, files_url) for f in files)
    return links_page(f"Links for {project}", links)
