"""The URLs this service answers with and fetches from.

`service_url`: the one fact behind every absolute link it answers with (`Location`, the
dashboard's configuration snippets): the operator's `public_url`, or, without one, the URL the
request came to (its Host header, which the caller chooses). A link only tells the caller.

`own_url`: where this service's own pages are fetched from on a request's behalf (uv locking a
project inside the API, a project's builds installing what earlier ones published), and the
index URL a project build reports: the operator's `public_url`, or this process's own loopback
at the port the request arrived on (the listening socket's, never a header's). So no `Host:`
a caller sends picks an address the service then connects to."""

from __future__ import annotations

from starlette.requests import Request

from service.config import Settings
from service.errors import ConfigError

#: The address a process serving on all interfaces (or on loopback) reaches itself at.
LOOPBACK = "127.0.0.1"


def service_url(request: Request) -> str:
    """`public_url`, else the request's base URL; no trailing slash."""
    settings: Settings = request.app.state.settings
    return settings.public_url or str(request.base_url).rstrip("/")


def own_url(request: Request) -> str:
    """`public_url`, else `http://127.0.0.1:PORT` with the port of the socket the request came
    in on; no trailing slash."""
    settings: Settings = request.app.state.settings
    if settings.public_url:
        return settings.public_url
    server = request.scope.get("server")
    port = server[1] if isinstance(server, (tuple, list)) and len(server) == 2 else None
    if not isinstance(port, int):
        raise ConfigError(
            "this service listens on no TCP port it can reach itself at; set public_url"
        )
    return f"http://{LOOPBACK}:{port}"
