"""Bounded request bodies, and a token checked before any body is read.

A pure ASGI middleware in front of every route: a body whose Content-Length passes the limit is
refused at once (413) and never read; a body without one is counted as it arrives and refused as
soon as it passes the limit. Writes to `/v1/builds` need a token with the `build` scope: without
one the answer (401/403) comes before a byte of the body is read. JSON bodies and webhooks get
`limits.max_body_bytes`, multipart uploads `limits.max_upload_bytes`.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import check
from service.config import Settings
from service.errors import WheelwrightError

BUILDS = "/v1/builds"
GITHUB_HOOK = "/v1/webhooks/github"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
Refusal = tuple[int, str, dict[str, str]]


class BodyLimits:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"].rstrip("/")
        refusal = self._refusal(path, headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        limit = self._limit(headers)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await _answer(send, 413, _too_large(limit))
            return
        await self.app(scope, _bounded(receive, limit), send)

    def _limit(self, headers: dict[str, str]) -> int:
        limits = self.settings.limits
        if headers.get("content-type", "").startswith("multipart/"):
            return limits.max_upload_bytes
        return limits.max_body_bytes

    def _refusal(
        self, path: str, headers: dict[str, str]
    ) -> tuple[int, str, dict[str, str]] | None:
        """Why the request is refused before its body is read, if it is."""
        if path == BUILDS or path.startswith(f"{BUILDS}/"):
            try:
                check(self.settings.auth, headers.get("authorization"), "build")
            except WheelwrightError as exc:
                extra = {"www-authenticate": 'Basic realm="wheelwright"'}
                return exc.http_status, str(exc), extra if exc.http_status == 401 else {}
        if path == GITHUB_HOOK and not headers.get("x-hub-signature-256"):
            return 401, "X-Hub-Signature-256 is missing", {}
        return None


def _too_large(limit: int) -> str:
    return f"the request body is larger than this service's limit of {limit} bytes"


def _bounded(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # FastAPI passes an HTTPException raised while reading the body on unchanged
                raise HTTPException(413, _too_large(limit))
        return message

    return bounded


async def _answer(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
