"""API tokens with scopes, checked in constant time.

`Authorization: Bearer <token>` for the API; the index also takes HTTP basic auth with the token
as the password (any user name), which is how uv and pip send credentials from an index URL
(`http://user:TOKEN@host/simple/env/`). With no tokens configured everything is open: the
embedded default on one machine. `admin` implies every scope, `build` implies `read`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from typing import Literal

from fastapi import Request

from service.config import ApiToken, AuthSettings
from service.errors import AuthError, ForbiddenError

Scope = Literal["read", "build", "admin"]
IMPLIED: dict[str, set[str]] = {"admin": {"read", "build", "admin"}, "build": {"read", "build"}}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def presented_token(authorization: str | None) -> str | None:
    """The token in a Bearer or Basic (password) Authorization header."""
    if not authorization:
        return None
    kind, _, value = authorization.partition(" ")
    if kind.lower() == "bearer":
        return value.strip() or None
    if kind.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def scopes_of(auth: AuthSettings, token: str) -> set[str]:
    """Every configured token is compared (in constant time), whichever matches."""
    offered = _digest(token)
    granted: set[str] = set()
    for entry in auth.tokens:
        if hmac.compare_digest(offered, _digest(entry.token.get_secret_value())):
            for scope in entry.scopes:
                granted |= IMPLIED.get(scope, {scope})
    return granted


def matching(auth: AuthSettings, token: str) -> list[ApiToken]:
    """The configured entries of `token` (each compared in constant time)."""
    offered = _digest(token)
    return [
        entry
        for entry in auth.tokens
        if hmac.compare_digest(offered, _digest(entry.token.get_secret_value()))
    ]


def token_name(auth: AuthSettings, authorization: str | None) -> str | None:
    """The configured name of the token presented (never the token), or None."""
    token = presented_token(authorization)
    entries = matching(auth, token) if token is not None else []
    return entries[0].name if entries else None


def check(auth: AuthSettings, authorization: str | None, scope: Scope) -> None:
    if not auth.tokens:
        return
    token = presented_token(authorization)
    if token is None:
        raise AuthError("this needs a token: send 'Authorization: Bearer <token>'")
    granted = scopes_of(auth, token)
    if not granted:
        raise AuthError("the token is not valid")
    if scope not in granted:
        raise ForbiddenError(f"the token lacks the {scope!r} scope")


def require(scope: Scope) -> Callable[[Request], None]:
    """A FastAPI dependency: the request's token must carry `scope`."""

    def dependency(request: Request) -> None:
        check(request.app.state.settings.auth, request.headers.get("authorization"), scope)

    return dependency


def index_access(request: Request) -> None:
    """The index: anonymous when allowed, else a token with `read` (basic auth works)."""
    auth: AuthSettings = request.app.state.settings.auth
    if auth.anonymous_index:
        return
    check(auth, request.headers.get("authorization"), "read")
