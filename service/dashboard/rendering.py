"""Templates and the few helpers every dashboard page shares: who may look, how pages render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from service.dashboard.session import CSRF_FIELD, Viewer, csrf_token, remember_csrf, viewer
from service.dashboard.views import duration, moment
from service.errors import WheelwrightError

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["duration"] = duration
templates.env.filters["moment"] = moment
templates.env.filters["filesize"] = lambda n: _size(int(n))
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


#: Pages are never cached, never framed, and load scripts and styles from this site alone.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
}


class LoginRequired(Exception):
    """A page asked for without credentials: the browser is sent to the login form."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


class ScopeRequired(Exception):
    def __init__(self, scope: str) -> None:
        super().__init__(scope)
        self.scope = scope


def seen(request: Request) -> Viewer:
    """A FastAPI dependency: the viewer, who must be allowed to read."""
    who = viewer(request)
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    if not who.may("read"):
        raise ScopeRequired("read")
    return who


Seen = Annotated[Viewer, Depends(seen)]


def root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def page(
    request: Request,
    template: str,
    who: Viewer | None,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {
            "viewer": who,
            "csrf": csrf_token(request),
            "csrf_field": CSRF_FIELD,
            "root": root(request),
            **context,
        },
        status_code=status,
        headers=HEADERS,
    )
    remember_csrf(response, request)
    return response


def fragment(template: str, **context: Any) -> str:
    """A template rendered to a string (the live updates' pieces)."""
    return templates.get_template(template).render(**context)


def error_page(request: Request, who: Viewer | None, exc: WheelwrightError) -> HTMLResponse:
    return page(
        request,
        "error.html",
        who,
        {"status": exc.http_status, "message": str(exc)},
        status=exc.http_status,
    )


def login_redirect(request: Request, exc: Exception) -> Response:
    target = exc.target if isinstance(exc, LoginRequired) else "/ui/"
    return RedirectResponse(f"{root(request)}/ui/login?next={quote(target)}", status_code=303)


def scope_refused(request: Request, exc: Exception) -> Response:
    scope = exc.scope if isinstance(exc, ScopeRequired) else "read"
    return page(
        request,
        "error.html",
        viewer(request),
        {"status": 403, "message": f"your token lacks the {scope!r} scope"},
        status=403,
    )
