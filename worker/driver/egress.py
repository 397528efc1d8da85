"""Inside a build container with "the network": the way to the worker's egress proxy.

The stage has no network of its own, only loopback. The worker mounts its proxy's unix socket
into the stage; this forwards a loopback port to it, and points the proxy variables of every
program the stage starts (uv, the build backend) at that port. Stdlib only: shipped in the driver
bundle.
"""

from __future__ import annotations

import os
import socket
import threading
from contextlib import suppress

#: The variables that point a program at a proxy, and those that would let it go around one.
PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
NO_PROXY_NAMES = ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


def forward(socket_path: str) -> int:
    """Serve 127.0.0.1:PORT, each connection joined to the proxy at `socket_path`; the PORT."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_join, args=(conn, socket_path), daemon=True).start()

    threading.Thread(target=serve, name="egress-forward", daemon=True).start()
    port: int = listener.getsockname()[1]
    return port


def use_proxy(socket_path: str) -> str:
    """Start forwarding and set this process's proxy variables (its children inherit them);
    the proxy URL."""
    url = f"http://127.0.0.1:{forward(socket_path)}"
    for name in PROXY_NAMES:
        os.environ[name] = url
    for name in NO_PROXY_NAMES:
        os.environ.pop(name, None)
    return url


def _join(conn: socket.socket, socket_path: str) -> None:
    proxy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proxy.connect(socket_path)
    except OSError:
        proxy.close()
        conn.close()
        return
    back = threading.Thread(target=_pump, args=(proxy, conn), daemon=True)
    back.start()
    _pump(conn, proxy)
    back.join()
    proxy.close()
    conn.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
