"""The egress proxy itself: `CONNECT` tunnels and absolute-form http requests, each destination
checked by the policy and connected to at the very address it checked."""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit

from service.egress.policy import EgressPolicy, EgressRefused, IPAddress

HEAD_LIMIT = 64 * 1024
CONNECT_TIMEOUT_S = 30.0
IDLE_TIMEOUT_S = 300.0
MAX_CONNECTIONS = 256
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te"}


class EgressProxy:
    """One proxy: on the unix socket `path` (a build session's, made by `start`), or with no
    path on a port of 127.0.0.1 (`url`, for a program of this machine)."""

    def __init__(
        self,
        path: Path | None,
        policy: EgressPolicy,
        *,
        on_refused: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.path = path
        self.policy = policy
        self._on_refused = on_refused
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, for the proxy variables of a program on this machine."""
        assert self._listener is not None and self.path is None  # noqa: S101  (a started port)
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> EgressProxy:
        if self.path is None:
            listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        else:
            self.path.unlink(missing_ok=True)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                _bind_unix(listener, self.path)
                self.path.chmod(0o666)  # the stage's user connects; the folder is the build's
                listener.listen(64)
            except BaseException:
                listener.close()
                raise
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, name="egress", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with self._lock:
            for conn in list(self._open):
                _shut(conn)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> EgressProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        assert self._listener is not None  # noqa: S101  (started)
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if len(self._open) >= MAX_CONNECTIONS:
                    _answer(conn, 503, "too many connections from this build at once")
                    conn.close()
                    continue
                self._open.add(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            conn.settimeout(IDLE_TIMEOUT_S)
            head, rest = _read_head(conn)
            method, target, headers = _parse_head(head)
            if method == "CONNECT":
                upstream = self._tunnel(conn, target)
            else:
                upstream = self._forward(method, target, headers)
            if rest:
                upstream.sendall(rest)
            _relay(conn, upstream)
        except EgressRefused as exc:
            self._on_refused(str(exc))
            _answer(conn, 403, f"wheelwright egress: {exc}")
        except _BadRequest as exc:
            _answer(conn, 400, f"wheelwright egress: {exc}")
        except OSError as exc:
            _answer(conn, 502, f"wheelwright egress: {exc}")
        finally:
            if upstream is not None:
                upstream.close()
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def _tunnel(self, conn: socket.socket, target: str) -> socket.socket:
        """CONNECT host:port (https): the connection, its 200 sent (or the upstream's to pass)."""
        host, port = _split_host_port(target, default=443)
        upstream = self._connect("https", host, port, tunnel=True)
        if not self._via_upstream("https", host):
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        return upstream

    def _forward(self, method: str, target: str, headers: list[tuple[str, str]]) -> socket.socket:
        """An absolute-form http:// request: sent on, origin-form (whole to an upstream), its
        connection closed after the answer."""
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            raise _BadRequest(f"{method} {target!r}: only CONNECT and http:// URLs are served")
        host, port = parts.hostname, parts.port or 80
        via = self.policy.upstream_for("http", host)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP_HEADERS]
        if via is not None and via.authorization:
            kept.append(("Proxy-Authorization", via.authorization))
        kept.append(("Connection", "close"))
        upstream = self._connect("http", host, port, tunnel=False)
        lines = [f"{method} {target if via else path} HTTP/1.1", *(f"{k}: {v}" for k, v in kept)]
        upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return upstream

    def _via_upstream(self, scheme: str, host: str) -> bool:
        return self.policy.upstream_for(scheme, host) is not None

    def _connect(self, scheme: str, host: str, port: int, *, tunnel: bool) -> socket.socket:
        """A connection to `host:port` at an address `check` allowed, or through the
        operator's proxy (a CONNECT it answers 200 to, for https)."""
        via = self.policy.upstream_for(scheme, host)
        if via is None:
            return _open_first(self.policy.check(host, port))
        try:
            self.policy.check(host, port)
        except EgressRefused as exc:
            if "cannot resolve" not in str(exc):  # unresolvable here: the upstream resolves it
                raise
        upstream = _open_first((address, via.port) for address, _ in _resolved(via.host, via.port))
        if tunnel:  # ask the upstream for the tunnel; its answer goes to the stage
            auth = f"Proxy-Authorization: {via.authorization}\r\n" if via.authorization else ""
            target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
            upstream.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n".encode())
        return upstream


class _BadRequest(Exception):
    pass


def _bind_unix(listener: socket.socket, path: Path) -> None:
    """Bind at `path`, through a short link to its folder where the path is too long for a
    socket address (108 bytes)."""
    if len(os.fsencode(path)) < 100:
        listener.bind(str(path))
        return
    short = Path(tempfile.mkdtemp(prefix="ww-egress-"))
    link = short / "d"
    try:
        link.symlink_to(path.parent)
        listener.bind(str(link / path.name))
    finally:
        link.unlink(missing_ok=True)
        short.rmdir()


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(8192)
        if not chunk:
            raise _BadRequest("the request ended before its head did")
        data += chunk
        if len(data) > HEAD_LIMIT:
            raise _BadRequest(f"a request head over {HEAD_LIMIT} bytes")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(f"not an HTTP/1 request line: {lines[0][:200]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(f"a malformed header line: {line[:200]!r}")
        headers.append((name, value.strip()))
    return parts[0].upper(), parts[1], headers


def _split_host_port(target: str, *, default: int) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):
        host, port = target, str(default)
    if not port.isdigit() or not host:
        raise _BadRequest(f"CONNECT {target!r}: not host:port")
    return host.strip("[]"), int(port)


def _resolved(host: str, port: int) -> list[tuple[IPAddress, int]]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(ipaddress.ip_address(str(i[4][0]).split("%")[0]), port) for i in infos]


def _open_first(addresses: Iterable[tuple[IPAddress, int]]) -> socket.socket:
    error: OSError | None = None
    for address, port in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect((str(address), port))
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.settimeout(IDLE_TIMEOUT_S)
        return sock
    raise error or OSError("no address to connect to")


def _relay(client: socket.socket, server: socket.socket) -> None:
    """Bytes both ways until both sides are done (or one breaks, or stays idle too long)."""

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            _shut(source)
            _shut(sink)
            return
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=pump, args=(server, client), daemon=True)
    back.start()
    pump(client, server)
    back.join()


def _answer(conn: socket.socket, status: int, text: str) -> None:
    reasons = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 503: "Unavailable"}
    body = (text + "\n").encode()
    head = (
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with suppress(OSError):
        conn.sendall(head.encode() + body)


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
