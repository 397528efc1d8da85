"""An http server on this machine's loopback that keeps what it was asked: the origin the egress
tests reach (or must never reach) through the proxy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Origin:
    """Answers every GET with `status` (and `body` when 200); `requests` holds each path and
    its headers, `port` where it listens (on `host`: "0.0.0.0" for every interface, as a
    service that listens on all of them)."""

    def __init__(
        self, status: int = 200, body: bytes = b"hello from the origin", host: str = "127.0.0.1"
    ) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                origin.requests.append((self.path, dict(self.headers.items())))
                if status != 200:
                    self.send_error(status)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


@contextmanager
def serving(origin: Origin) -> Iterator[Origin]:
    # a short poll: shutdown() waits for it, in every test's teardown
    thread = threading.Thread(target=origin.server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        origin.server.shutdown()
        origin.server.server_close()
