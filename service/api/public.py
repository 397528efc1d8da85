"""The URL this service is reached at, the one fact behind every absolute link it answers with
(index URLs, a project build's uv configuration, `Location`): the operator's `public_url`, or,
without one, the URL the request came to (its Host header, which the caller chooses)."""

from __future__ import annotations

from starlette.requests import Request

from service.config import Settings


def service_url(request: Request) -> str:
    """`public_url`, else the request's base URL; no trailing slash."""
    settings: Settings = request.app.state.settings
    return settings.public_url or str(request.base_url).rstrip("/")
