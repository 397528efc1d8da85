"""Dashboard pages of what was built: environments (with what to paste), a wheel's provenance,
the overview charts, and wheel downloads for a signed-in browser."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from service.api.index import files as index_files
from service.api.public import service_url
from service.artifacts import lookup, read_manifest
from service.config import Settings
from service.dashboard.overview import overview
from service.dashboard.rendering import Seen, error_page, page
from service.errors import (
    InvalidArtifactError,
    ObjectNotFoundError,
    UnknownEnvironmentError,
    WheelwrightError,
)
from service.index import Catalog, CatalogFile
from service.index_config import INDEX_NAME, render_pip_config, render_uv_config
from service.jobs import JobBackend
from service.jobs.redis import LIST_SCAN
from service.layout import manifest_prefix
from service.models import EnvironmentSpec, RebuildOf
from service.provenance.rebuild import rebuilds
from service.provenance.stored import stored_provenance
from service.store import WheelStore

router = APIRouter(prefix="/ui", include_in_schema=False)


@dataclass(frozen=True)
class EnvironmentFacts:
    """How an environment's wheels are built: its configuration, or its first manifest's inputs."""

    configured: bool
    kind: str = ""
    python: str = ""
    cuda: str | None = None
    runtime: tuple[str, ...] = ()
    build_env: dict[str, str] = field(default_factory=dict)


_facts_lock = threading.Lock()


def _from_spec(spec: EnvironmentSpec) -> EnvironmentFacts:
    target = spec.target
    return EnvironmentFacts(
        True, target.kind, target.python, target.cuda, spec.runtime, dict(spec.build_env)
    )


def environment_facts(
    store: WheelStore, settings: Settings, name: str, cache: dict[str, EnvironmentFacts]
) -> EnvironmentFacts:
    spec = settings.environments.get(name)
    if spec is not None:
        return _from_spec(spec)
    with _facts_lock:
        if name in cache:  # manifests never change, and the name covers the inputs
            return cache[name]
    facts = EnvironmentFacts(False)
    for obj in store.list(manifest_prefix(name)):
        try:
            inputs = read_manifest(store.get(obj.key)).manifest.get("inputs")
        except (InvalidArtifactError, ObjectNotFoundError):
            continue
        if isinstance(inputs, dict):
            target = inputs.get("target") or {}
            facts = EnvironmentFacts(
                False,
                str(target.get("kind", "")),
                str(target.get("python", "")),
                target.get("cuda"),
                tuple(inputs.get("runtime") or ()),
                dict(inputs.get("build_env") or {}),
            )
        break
    with _facts_lock:
        cache[name] = facts
    return facts


def _facts(request: Request, name: str) -> EnvironmentFacts:
    state = request.app.state
    if not hasattr(state, "environment_facts"):
        state.environment_facts = {}
    return environment_facts(state.store, state.settings, name, state.environment_facts)


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.index_catalog
    return catalog


def _names(request: Request) -> list[str]:
    settings: Settings = request.app.state.settings
    return sorted(set(_catalog(request).environment_names()) | set(settings.environments))


@router.get("/environments", response_class=HTMLResponse)
def environments(request: Request, who: Seen) -> HTMLResponse:
    items = []
    for name in _names(request):
        try:
            projects = _catalog(request).project_names(name)
        except UnknownEnvironmentError:
            projects = []
        items.append((name, _facts(request, name), len(projects)))
    return page(request, "environments.html", who, {"nav": "environments", "items": items})


@router.get("/environments/{name}", response_class=HTMLResponse)
def environment(request: Request, name: str, who: Seen) -> HTMLResponse:
    """One environment: how it builds, its packages, and the uv and pip configuration."""
    settings: Settings = request.app.state.settings
    try:
        if name not in _names(request):
            raise UnknownEnvironmentError(f"no build environment named {name!r}")
        try:
            projects: dict[str, tuple[CatalogFile, ...]] = dict(
                _catalog(request).environment(name).projects
            )
        except UnknownEnvironmentError:
            projects = {}  # configured, nothing published yet
        facts = _facts(request, name)
        names = sorted(projects) or ["PACKAGE"]
        uv = render_uv_config(service_url(request), name, names)
        pip = render_pip_config(service_url(request), name, names)
    except WheelwrightError as exc:
        return error_page(request, who, exc)
    locked = bool(settings.auth.tokens) and not settings.auth.anonymous_index
    return page(
        request,
        "environment.html",
        who,
        {
            "nav": "environments",
            "name": name,
            "facts": facts,
            "projects": projects,
            "uv_config": uv,
            "pip_config": pip,
            "credentials_env": f"UV_INDEX_{INDEX_NAME.upper()}" if locked else None,
        },
    )


@router.get("/wheels/{environment}/{request_key}", response_class=HTMLResponse)
def provenance(request: Request, environment: str, request_key: str, who: Seen) -> HTMLResponse:
    """Where a published wheel came from: its manifest, and who asked for the build."""
    jobs: JobBackend = request.app.state.jobs
    try:
        artifact = lookup(request.app.state.store, environment, request_key)
        if artifact is None:
            raise ObjectNotFoundError(f"no wheel published for {request_key!r} in {environment!r}")
    except WheelwrightError as exc:
        return error_page(request, who, exc)
    manifest: dict[str, Any] = dict(artifact.manifest)
    record = None
    build_id = manifest.get("build_id")
    if isinstance(build_id, str):
        try:
            record = jobs.get(build_id)
        except WheelwrightError:
            record = None  # the live record expired; the manifest is what lasts
    settings: Settings = request.app.state.settings
    try:
        signed = stored_provenance(request.app.state.store, settings, artifact)
        of = RebuildOf(environment=artifact.environment, request_key=artifact.request_key)
        rebuilt = rebuilds(request.app.state.store, of)
    except WheelwrightError as exc:
        return error_page(request, who, exc)
    facts = {"artifact": artifact, "m": manifest, "record": record, "signed": signed}
    return page(
        request, "provenance.html", who, {"nav": "environments", **facts, "rebuilds": rebuilt}
    )


@router.get("/overview", response_class=HTMLResponse)
def overview_page(request: Request, who: Seen) -> HTMLResponse:
    jobs: JobBackend = request.app.state.jobs
    try:
        figures = overview(jobs.find(limit=LIST_SCAN), jobs.counters())
    except WheelwrightError as exc:
        return error_page(request, who, exc)
    return page(request, "overview.html", who, {"nav": "overview", "o": figures})


@router.get("/files/{key:path}")
def download(request: Request, key: str, who: Seen) -> Response:
    """A wheel for a signed-in browser (the index's `/files/` takes tokens, not the cookie)."""
    del who
    return index_files(key, request.app.state.store, request.app.state.settings)
