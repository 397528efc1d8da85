"""Dashboard pages of builds: the filterable list, one build (timeline, live log), cancel."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from service.dashboard import logs
from service.dashboard.rendering import Seen, error_page, fragment, page, root
from service.dashboard.session import CSRF_FIELD, check_csrf
from service.dashboard.views import row, timeline
from service.errors import ForbiddenError, InvalidRequestError, WheelwrightError
from service.index import Catalog
from service.jobs import JobBackend
from service.models import BuildRecord, BuildState
from service.store import WheelStore

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE_SIZE = 50
_CURSOR = re.compile(r"^\d{1,20}(-\d{1,20})?$")  # a stream entry id, or a line number
STATES: tuple[BuildState, ...] = ("queued", "running", "succeeded", "failed", "cancelled")


def _jobs(request: Request) -> JobBackend:
    jobs: JobBackend = request.app.state.jobs
    return jobs


def _store(request: Request) -> WheelStore:
    store: WheelStore = request.app.state.store
    return store


def filter_choices(request: Request) -> tuple[list[str], list[str]]:
    """Environments and projects to offer as filters: configured and published ones."""
    catalog: Catalog = request.app.state.index_catalog
    try:
        names = catalog.environment_names()
        projects = catalog.all_project_names()
    except WheelwrightError:
        names, projects = [], []
    configured = list(request.app.state.settings.environments)
    return sorted(set(names) | set(configured)), projects


@router.get("/", response_class=HTMLResponse)
def builds(
    request: Request,
    who: Seen,
    *,
    state: Annotated[BuildState | None, Query()] = None,
    project: str | None = None,
    environment: str | None = None,
    before: float | None = None,
    partial: str | None = None,
) -> Response:
    """Builds, newest first, PAGE_SIZE at a time; `partial=rows` answers the rows alone."""
    project = project or None
    environment = environment or None
    records = _jobs(request).find(
        state=state, project=project, environment=environment, limit=PAGE_SIZE + 1, before=before
    )
    rows = [row(r) for r in records[:PAGE_SIZE]]
    filters = {"state": state, "project": project, "environment": environment}
    kept = {k: v for k, v in filters.items() if v}
    older = (
        f"?{urlencode({**kept, 'before': repr(records[PAGE_SIZE - 1].created_at)})}"
        if len(records) > PAGE_SIZE
        else None
    )
    context: dict[str, Any] = {"rows": rows, "root": root(request)}
    if partial == "rows":
        return HTMLResponse(
            fragment("_rows.html", **context), headers={"Cache-Control": "no-store"}
        )
    environments, projects = filter_choices(request)
    return page(
        request,
        "builds.html",
        who,
        {
            **context,
            "nav": "builds",
            "filters": filters,
            "states": STATES,
            "environments": environments,
            "projects": projects,
            "older": older,
            "newest": f"?{urlencode(kept)}" if before is not None else None,
            "live_query": urlencode({**kept, **({"before": before} if before else {})}),
        },
    )


def _build_context(request: Request, record: BuildRecord) -> dict[str, Any]:
    return {
        "build": record,
        "row": row(record),
        "timeline": timeline(record),
        "root": root(request),
    }


@router.get("/builds/{build_id}", response_class=HTMLResponse)
def build_page(
    request: Request,
    build_id: str,
    who: Seen,
    offset: Annotated[int | None, Query(ge=0)] = None,
    until: Annotated[int | None, Query(ge=0)] = None,
) -> HTMLResponse:
    """One build: summary, stage timeline, the error, the wheel, and a page of its log."""
    try:
        record = _jobs(request).get(build_id)
        if record.terminal:
            log_page = logs.build_log(_store(request), _jobs(request), build_id, offset, until)
        else:
            log_page = logs.live_tail(_jobs(request), build_id)
    except WheelwrightError as exc:
        return error_page(request, who, exc)
    artifact = record.artifact or {}
    return page(
        request,
        "build.html",
        who,
        {
            **_build_context(request, record),
            "nav": "builds",
            "log": log_page,
            "artifact": artifact,
            "may_cancel": who.may("build") and not record.terminal,
        },
    )


@router.get("/builds/{build_id}/live")
def build_live(request: Request, build_id: str, who: Seen, cursor: str = "0") -> JSONResponse:
    """What changed since the page (or the last poll) read the log up to `cursor`."""
    del who
    if not _CURSOR.match(cursor):
        raise InvalidRequestError(f"cursor {cursor!r} is not a log position")
    jobs = _jobs(request)
    record = jobs.get(build_id)
    fresh = logs.live_after(jobs, build_id, cursor)
    context = _build_context(request, record)
    return JSONResponse(
        {
            "state": record.state,
            "terminal": record.terminal,
            "summary": fragment("_summary.html", **context),
            "timeline": fragment("_timeline.html", **context),
            "lines": [{"text": line.text, "kind": line.kind} for line in fresh.lines],
            "cursor": fresh.cursor,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/builds/{build_id}/cancel", response_class=HTMLResponse)
def cancel(
    request: Request,
    build_id: str,
    who: Seen,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD)] = None,
) -> Response:
    """Cancel (the build scope and this browser's CSRF token are needed)."""
    try:
        check_csrf(request, csrf_token)
        if not who.may("build"):
            raise ForbiddenError("cancelling needs a token with the 'build' scope")
        _jobs(request).cancel(build_id)
    except WheelwrightError as exc:
        return error_page(request, who, exc)
    return RedirectResponse(f"{root(request)}/ui/builds/{build_id}", status_code=303)
