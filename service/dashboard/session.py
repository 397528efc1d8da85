"""Who is looking at the dashboard, and the cookies that remember it.

With no tokens configured everyone may do everything (the embedded default). Otherwise a page
takes the token as the API and the index do (`Authorization: Bearer`, or basic auth with the
token as the password), or a session cookie set by the login form. The cookie never holds the
token: it is `name.expiry.signature`, signed with a key derived from that token, so removing a
token from the configuration ends its sessions on every replica.

Every form that changes state carries a CSRF token that must equal the `ww_csrf` cookie (a random
value, SameSite=Strict, HttpOnly: another site can neither read it nor make the browser send it),
and a request whose Origin names another site is refused as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import Request, Response

from service.auth import IMPLIED, matching, presented_token
from service.config import ApiToken, AuthSettings
from service.errors import ForbiddenError

SESSION_COOKIE = "ww_session"
CSRF_COOKIE = "ww_csrf"
CSRF_FIELD = "csrf_token"
SESSION_S = 12 * 3600
_SALT = b"wheelwright-dashboard-session\0"


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: a token's name (None when the service is open) and scopes."""

    name: str | None
    scopes: frozenset[str] = field(default_factory=frozenset)
    open: bool = False

    def may(self, scope: str) -> bool:
        return scope in self.scopes


OPEN = Viewer(None, frozenset({"read", "build", "admin"}), open=True)


def _auth(request: Request) -> AuthSettings:
    auth: AuthSettings = request.app.state.settings.auth
    return auth


def _scopes(entries: list[ApiToken]) -> frozenset[str]:
    granted: set[str] = set()
    for entry in entries:
        for scope in entry.scopes:
            granted |= IMPLIED.get(scope, {scope})
    return frozenset(granted)


def _signature(entry: ApiToken, payload: str) -> str:
    key = hashlib.sha256(_SALT + entry.token.get_secret_value().encode()).digest()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def session_value(entry: ApiToken, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_S)
    name = base64.urlsafe_b64encode(entry.name.encode()).decode().rstrip("=")
    payload = f"{name}.{expires}"
    return f"{payload}.{_signature(entry, payload)}"


def _from_session(auth: AuthSettings, value: str) -> Viewer | None:
    parts = value.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) < time.time():
        return None
    try:
        name = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)).decode()
    except ValueError:
        return None
    payload = f"{parts[0]}.{parts[1]}"
    entries = [
        t
        for t in auth.tokens
        if t.name == name and hmac.compare_digest(_signature(t, payload), parts[2])
    ]
    return Viewer(name, _scopes(entries)) if entries else None


def viewer(request: Request) -> Viewer | None:
    """The viewer of `request`, or None when it brings no valid credentials."""
    auth = _auth(request)
    if not auth.tokens:
        return OPEN
    token = presented_token(request.headers.get("authorization"))
    if token is not None:
        entries = matching(auth, token)
        return Viewer(entries[0].name, _scopes(entries)) if entries else None
    cookie = request.cookies.get(SESSION_COOKIE)
    return _from_session(auth, cookie) if cookie else None


def login(auth: AuthSettings, token: str) -> tuple[Viewer, str] | None:
    """A viewer and its session cookie value for a token typed into the login form."""
    entries = matching(auth, token)
    if not entries:
        return None
    return Viewer(entries[0].name, _scopes(entries)), session_value(entries[0])


def secure_cookies(request: Request) -> bool:
    """Secure cookies wherever a browser keeps them: over HTTPS, and on a loopback host.
    Over plain HTTP to another host a Secure cookie would be dropped and nobody could log in;
    the login page warns there that the token travels unencrypted."""
    if request.url.scheme == "https":
        return True
    host = request.url.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def set_session(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_S,
        path="/",
        secure=secure_cookies(request),
        httponly=True,
        samesite="lax",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=secure_cookies(request), httponly=True, samesite="lax"
    )


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (made on its first page; `remember_csrf` sets the cookie)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if len(current) == 43:  # 32 random bytes, base64url
        return current
    made: str | None = getattr(request.state, "new_csrf", None)
    if made is None:
        made = secrets.token_urlsafe(32)
        request.state.new_csrf = made
    return made


def remember_csrf(response: Response, request: Request) -> None:
    made: str | None = getattr(request.state, "new_csrf", None)
    if made is not None:
        response.set_cookie(
            CSRF_COOKIE,
            made,
            path="/",
            secure=secure_cookies(request),
            httponly=True,
            samesite="strict",
        )


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a state-changing form post without this browser's CSRF token or from elsewhere."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not submitted or not cookie or not hmac.compare_digest(submitted, cookie):
        raise ForbiddenError("the form's CSRF token is missing or wrong: reload the page")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        theirs = urlsplit(origin)
        ours = request.url
        if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
            raise ForbiddenError(f"a form posted from {origin} is not accepted here")
