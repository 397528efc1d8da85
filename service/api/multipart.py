"""One `POST /v1/builds` for both JSON requests and multipart sdist uploads.

FastAPI types one body per route, so the upload has its own handler; this middleware sends a
multipart `POST /v1/builds` there, and `document` merges the two bodies into the one operation
of the OpenAPI spec (the upload route itself stays out of it).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

BUILDS = "/v1/builds"
UPLOAD = "/v1/builds/upload"


class MultipartBuilds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].rstrip("/") == BUILDS
            and dict(scope["headers"]).get(b"content-type", b"").startswith(b"multipart/")
        ):
            scope = {**scope, "path": UPLOAD, "raw_path": UPLOAD.encode()}
        await self.app(scope, receive, send)


def document(app: FastAPI) -> None:
    """Make `app.openapi()` show the multipart body under `POST /v1/builds`."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = merged(plain())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def merged(spec: dict[str, Any]) -> dict[str, Any]:
    upload = spec["paths"].pop(UPLOAD, None)
    if upload is not None:
        body = spec["paths"][BUILDS]["post"]["requestBody"]["content"]
        body.update(upload["post"]["requestBody"]["content"])
    return spec
