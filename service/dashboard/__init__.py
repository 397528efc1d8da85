"""The dashboard: server-rendered pages (Jinja2) over the same state the API serves.

`mount(app)` adds them under `/ui/` (the service's root URL leads there), with their stylesheet
and the one small script that keeps running builds and project builds live. See `session.py`
for who may look.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from service.dashboard import builds, catalog, login, projects
from service.dashboard.rendering import (
    HERE,
    LoginRequired,
    ScopeRequired,
    login_redirect,
    root,
    scope_refused,
)


def mount(app: FastAPI) -> None:
    app.include_router(builds.router)
    app.include_router(catalog.router)
    app.include_router(projects.router)
    app.include_router(login.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
    app.add_exception_handler(LoginRequired, login_redirect)
    app.add_exception_handler(ScopeRequired, scope_refused)

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{root(request)}/ui/", status_code=307)


__all__ = ["mount"]
