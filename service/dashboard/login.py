"""The login form (a token in, a session cookie out) and logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.dashboard.rendering import error_page, page, root
from service.dashboard.session import (
    CSRF_FIELD,
    check_csrf,
    clear_session,
    login,
    secure_cookies,
    set_session,
    viewer,
)
from service.errors import WheelwrightError

router = APIRouter(prefix="/ui", include_in_schema=False)


def _local(target: str | None) -> str:
    """Only a path on this site is a place to go after logging in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/ui/"
    return target


def _form(request: Request, target: str, error: str | None, status: int = 200) -> HTMLResponse:
    return page(
        request,
        "login.html",
        None,
        {"next": _local(target), "error": error, "plain_http": not secure_cookies(request)},
        status=status,
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/ui/") -> Response:
    if not request.app.state.settings.auth.tokens:
        return RedirectResponse(f"{root(request)}{_local(next)}", status_code=303)
    return _form(request, next, None)


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/ui/",
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD)] = None,
) -> Response:
    try:
        check_csrf(request, csrf_token)
    except WheelwrightError as exc:
        return error_page(request, None, exc)
    signed_in = login(request.app.state.settings.auth, token.strip())
    if signed_in is None:
        return _form(request, next, "That token is not valid here.", status=401)
    response = RedirectResponse(f"{root(request)}{_local(next)}", status_code=303)
    set_session(response, request, signed_in[1])
    return response


@router.post("/logout")
def logout(
    request: Request, csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD)] = None
) -> Response:
    try:
        check_csrf(request, csrf_token)
    except WheelwrightError as exc:
        return error_page(request, viewer(request), exc)
    response = RedirectResponse(f"{root(request)}/ui/login", status_code=303)
    clear_session(response, request)
    return response
