"""HTTP face of the package index: `/simple/...` pages, `/find-links/...`, `/files/...`.

Rendering lives in `service.index` (pure); this module only negotiates, redirects and streams.
Links on the pages are relative: a project page at `/simple/<env>/<project>/` points to
`../../../files/wheels/<sha256>/<filename>`, and PEP 658 metadata is that URL + `.metadata`.
Each page is one catalog query: an environment's pages are rendered once per generation of it
(`PageCache`; the generation is the query), so a publish anywhere shows on the next request.
Its `ETag` is the hash of what it says (body and media type), so uv's and pip's caches
revalidate with `If-None-Match` and get a 304 while nothing was published.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from packaging.utils import canonicalize_name
from starlette.background import BackgroundTask

from service.api.public import service_url
from service.config import Settings
from service.errors import InvalidRequestError, ObjectNotFoundError
from service.index import Catalog, Page, choose_media_type
from service.index import pages as index_pages
from service.index.cache import PageCache
from service.store import WheelStore, check_key

router = APIRouter(tags=["index"])

PROJECT_FILES_PREFIX = "../../../files/"
FIND_LINKS_FILES_PREFIX = "../../files/"
_CHUNK = 256 * 1024
_IMMUTABLE = "public, max-age=31536000, immutable"
_TEXT_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}


def get_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.index_catalog
    return catalog


def get_pages(request: Request) -> PageCache:
    pages: PageCache = request.app.state.index_pages
    return pages


def get_store(request: Request) -> WheelStore:
    store: WheelStore = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Catalogue = Annotated[Catalog, Depends(get_catalog)]
Pages = Annotated[PageCache, Depends(get_pages)]
Store = Annotated[WheelStore, Depends(get_store)]
Config = Annotated[Settings, Depends(get_settings)]


@router.get("/simple", include_in_schema=False)
def simple_no_slash(request: Request) -> Response:
    return _moved(request, "/simple/")


@router.get("/simple/")
def simple_root(request: Request, catalog: Catalogue) -> Response:
    """The build environments; each is an index of its own."""
    media = choose_media_type(request.headers.get("accept"))
    if media is None:
        return _not_acceptable()
    return _page(request, index_pages.environments_page(catalog.environment_names(), media))


@router.get("/simple/{environment}", include_in_schema=False)
def environment_no_slash(request: Request, environment: str) -> Response:
    return _moved(request, f"/simple/{environment}/")


@router.get("/simple/{environment}/")
def environment_root(
    request: Request, environment: str, catalog: Catalogue, pages: Pages
) -> Response:
    """PEP 503/691 root of one environment: its projects."""
    generation = catalog.generation(environment)
    media = choose_media_type(request.headers.get("accept"))
    if media is None:
        return _not_acceptable()
    page = pages.get(
        (environment, generation, "projects", media),
        lambda: index_pages.projects_page(environment, catalog.project_names(environment), media),
    )
    assert page is not None  # noqa: S101  (a projects page always exists)
    return _page(request, page)


@router.get("/simple/{environment}/{project}", include_in_schema=False)
def project_no_slash(request: Request, environment: str, project: str) -> Response:
    return _moved(request, f"/simple/{environment}/{canonicalize_name(project)}/")


@router.get("/simple/{environment}/{project}/")
def project_detail(
    request: Request, environment: str, project: str, catalog: Catalogue, pages: Pages
) -> Response:
    """PEP 503/691 project page; non-normalized names redirect to the normalized URL."""
    normalized = canonicalize_name(project)
    if normalized != project:
        return _moved(request, f"/simple/{environment}/{normalized}/")
    generation = catalog.generation(environment)
    media = choose_media_type(request.headers.get("accept"))
    if media is None:
        return _not_acceptable()
    files_url = f"{service_url(request)}/files/"  # PEP 740's provenance URL is absolute

    def make() -> Page | None:
        found = catalog.project_files(environment, project)
        if found is None:
            return None
        return index_pages.project_page(project, found, media, PROJECT_FILES_PREFIX, files_url)

    # without `public_url` the Host header names the base: the page cache's byte budget bounds
    # what a caller cycling Host values can make it keep
    page = pages.get((environment, generation, "project", project, media, files_url), make)
    if page is None:
        return _text(404, f"no project {project!r} in environment {environment!r}")
    return _page(request, page)


@router.get("/find-links/{environment}", include_in_schema=False)
def find_links_no_slash(request: Request, environment: str) -> Response:
    return _moved(request, f"/find-links/{environment}/")


@router.get("/find-links/{environment}/")
def find_links(request: Request, environment: str, catalog: Catalogue, pages: Pages) -> Response:
    """Every wheel of one environment on a flat page, for `--find-links`."""
    generation = catalog.generation(environment)
    page = pages.get(
        (environment, generation, "find-links"),
        lambda: index_pages.find_links_page(
            catalog.environment(environment), FIND_LINKS_FILES_PREFIX
        ),
    )
    assert page is not None  # noqa: S101  (a find-links page always exists)
    return _page(request, page, vary=False)


#: `.metadata` (PEP 658) and `.provenance` (a DSSE envelope) beside each wheel
_MEDIA = {".metadata": "text/plain; charset=utf-8", ".provenance": "application/json"}


@router.get("/files/{key:path}")
def files(key: str, store: Store, settings: Config) -> Response:
    """A wheel or its `.metadata`: streamed from the store, or a redirect to a presigned URL."""
    try:
        check_key(key)
    except InvalidRequestError:
        return _text(404, "no such file")
    if not key.startswith("wheels/"):
        return _text(404, "no such file")
    if settings.store.presign:
        url = store.url(key, settings.store.presign_expiry_s)
        if url is not None:
            return RedirectResponse(url, status_code=302, headers=_TEXT_HEADERS)
    try:
        stream = store.open(key)
    except ObjectNotFoundError:
        return _text(404, "no such file")
    headers = {"Cache-Control": _IMMUTABLE}
    size = _size(stream)
    if size is not None:
        headers["Content-Length"] = str(size)
    media = _MEDIA.get(Path(key).suffix, "application/octet-stream")
    return StreamingResponse(
        _chunks(stream), media_type=media, headers=headers, background=BackgroundTask(stream.close)
    )


def _page(request: Request, page: Page, *, vary: bool = True) -> Response:
    """The page, or 304 when the client's `If-None-Match` names its ETag (RFC 9110 13.1.2)."""
    etag = page.etag
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if vary:
        headers["Vary"] = "Accept"
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(page.body, headers=headers, media_type=page.content_type)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison: `W/"x"` matches `"x"`, and `*` matches any current page."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _moved(request: Request, path: str) -> Response:
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}{path}", status_code=301, headers=_TEXT_HEADERS)


def _not_acceptable() -> Response:
    offered = ", ".join(index_pages.OFFERED)
    return _text(406, f"none of the accepted media types is offered; offered: {offered}")


def _text(status: int, message: str) -> Response:
    return Response(f"{message}\n", status_code=status, media_type="text/plain; charset=utf-8")


def _size(stream: BinaryIO) -> int | None:
    if not stream.seekable():
        return None
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    return size


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := stream.read(_CHUNK):
            yield chunk
    finally:
        stream.close()
