"""Dashboard pages of project builds: the list, one project build (its package graph, live while
it runs), read from the store as `GET /v1/projects/{id}` reads them, with the same `read` scope."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from service.dashboard.project_views import (
    State,
    environment_link,
    failures,
    newest_first,
    package_rows,
    project_id,
    project_row,
    recent,
    shown_state,
    target_text,
    terminal,
)
from service.dashboard.rendering import Seen, error_page, fragment, page, root
from service.errors import BuildNotFoundError, WheelwrightError
from service.layout import PROJECT_BUILDS
from service.project.served import load_state
from service.store import WheelStore

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE_SIZE = 50


def _store(request: Request) -> WheelStore:
    store: WheelStore = request.app.state.store
    return store


def _page_of_states(store: WheelStore, before: str | None) -> tuple[list[State], str | None]:
    """A page of project builds (one listing, at most PAGE_SIZE states read), newest first."""
    objects, older = recent(store.list(PROJECT_BUILDS), limit=PAGE_SIZE, before=before)
    states: list[State] = []
    for obj in objects:
        ident = project_id(obj.key)
        if ident is None:
            continue
        try:
            states.append(load_state(store, ident))
        except (BuildNotFoundError, ValueError):  # removed meanwhile, or not JSON: not listed
            continue
    return newest_first(states), older


@router.get("/projects", response_class=HTMLResponse)
def projects(
    request: Request, who: Seen, before: str | None = None, partial: str | None = None
) -> Response:
    """Project builds, newest first, PAGE_SIZE at a time; `partial=rows` answers the rows alone."""
    try:
        states, older = _page_of_states(_store(request), before or None)
    except WheelwrightError as exc:
        return error_page(request, who, exc)
    context: dict[str, Any] = {"rows": [project_row(s) for s in states], "root": root(request)}
    if partial == "rows":
        return HTMLResponse(
            fragment("_project_rows.html", **context), headers={"Cache-Control": "no-store"}
        )
    return page(
        request,
        "projects.html",
        who,
        {
            **context,
            "nav": "projects",
            "page_size": PAGE_SIZE,
            "older": older,
            "before": before or "",
        },
    )


def _project_context(request: Request, state: State) -> dict[str, Any]:
    return {
        "project": state,
        "row": project_row(state),
        "shown": shown_state(state),
        "target": target_text(state.get("target")),
        "environment": environment_link(state),
        "packages": package_rows(state),
        "failures": failures(state),
        "root": root(request),
    }


@router.get("/projects/{project_build_id}/live")
def project_live(request: Request, project_build_id: str, who: Seen) -> JSONResponse:
    """The page's changing parts, for the script to swap in while the project build runs."""
    del who
    state = load_state(_store(request), project_build_id)
    context = _project_context(request, state)
    return JSONResponse(
        {
            "state": shown_state(state),
            "terminal": terminal(state),
            "summary": fragment("_project_summary.html", **context),
            "packages": fragment("_packages.html", **context),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/projects/{project_build_id:path}", response_class=HTMLResponse)
def project_page(request: Request, project_build_id: str, who: Seen) -> HTMLResponse:
    """One project build: its state, source, target, the package graph, the uv configuration.
    Any id (slashes too, hence after `/live`) that names none is the 404 page, naming it."""
    try:
        state = load_state(_store(request), project_build_id)
    except WheelwrightError as exc:
        return error_page(request, who, exc)
    return page(
        request,
        "project.html",
        who,
        {**_project_context(request, state), "nav": "projects", "id": project_build_id},
    )
