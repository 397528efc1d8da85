"""The one way out for what a request makes run with the network: an HTTP proxy that reaches
public addresses only.

A docker stage with the network on runs with no network of its own (`network_mode="none"`); its
driver forwards a loopback port inside the container to this proxy's unix socket, mounted into
the stage, and points `HTTP(S)_PROXY` at it. So a package's code (a backend asked again online,
an sdist build dependency) reaches what an installer reaches, and nothing of the host. The same
proxy, on a loopback port, carries uv when it locks a project's files on the service's machine
(`service/project/trust.py`), where the indexes are the caller's. The proxy resolves each
destination itself, refuses the addresses of this host and its private networks (loopback,
link-local such as a cloud's metadata service, RFC 1918, shared and unique-local ranges,
multicast) unless the operator allows the host (`sources.private_hosts`, `public_url`, or an
index the configuration itself names), and connects to the very address it checked. `CONNECT`
tunnels (https) and absolute-form requests (http) are served; anything else is answered 400.
Behind an operator's own proxy (`HTTPS_PROXY` / `HTTP_PROXY` of this process) the tunnel goes
through it.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from service.config import Settings
from worker.driver.egress import NO_PROXY_NAMES, PROXY_NAMES

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The addresses of a host and its own networks: never a build's destination unless allowed.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/127",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
HEAD_LIMIT = 64 * 1024
CONNECT_TIMEOUT_S = 30.0
IDLE_TIMEOUT_S = 300.0
MAX_CONNECTIONS = 256
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te"}


class EgressRefused(Exception):
    """A destination a build may not reach; the message says which and why."""


def private_address(address: IPAddress) -> bool:
    """On this host or its own networks (an IPv4-mapped IPv6 address as its IPv4 one)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in PRIVATE_NETWORKS if net.version == address.version)


@dataclass(frozen=True)
class Upstream:
    """The operator's own proxy (host, port and the Proxy-Authorization it needs, if any)."""

    host: str
    port: int
    authorization: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Upstream | None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if not parts.hostname:
            return None
        auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            auth = "Basic " + base64.b64encode(pair).decode()
        return cls(parts.hostname, parts.port or 8080, auth)


@dataclass(frozen=True)
class EgressPolicy:
    """Where a build may connect: public addresses, and the hosts the operator allows."""

    allowed_hosts: frozenset[str] = frozenset()
    #: the operator's proxies by scheme ("http", "https"): the way out of this host, if any
    upstream: tuple[tuple[str, Upstream], ...] = ()
    #: hosts reached directly even with an upstream proxy (the operator's NO_PROXY)
    direct: tuple[str, ...] = ()

    def check(self, host: str, port: int) -> list[tuple[IPAddress, int]]:
        """The addresses of `host` a build may connect to (all of them, checked), or
        `EgressRefused` naming the one that is on this host's own networks."""
        name = host.strip("[]").lower()
        if not 0 < port < 65536:
            raise EgressRefused(f"{host}:{port}: no such port")
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise EgressRefused(f"{host}: cannot resolve it ({exc})") from None
        addresses = list(
            dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
        )
        if name not in self.allowed_hosts:
            for address in addresses:
                if private_address(address):
                    raise EgressRefused(
                        f"{host} is {address}, an address of this host or its own networks: "
                        "what a request or a build makes reach out reaches public addresses "
                        "only (the operator may allow a host in sources.private_hosts)"
                    )
        return [(address, port) for address in addresses]

    def upstream_for(self, scheme: str, host: str) -> Upstream | None:
        name = host.strip("[]").lower()
        if any(name == d or name.endswith(f".{d.lstrip('.')}") for d in self.direct):
            return None
        return dict(self.upstream).get(scheme)


def policy_for(settings: Settings, environ: dict[str, str] | None = None) -> EgressPolicy:
    """The operator's allow-list: `sources.private_hosts`, the service's own URL and the index
    hosts the configuration names; the worker's proxies as the upstream."""
    env = dict(os.environ if environ is None else environ)
    urls = [settings.public_url or "", settings.index.index_url, *settings.index.extra_index_urls]
    urls += [u for u in settings.index.find_links if "://" in u]
    for spec in settings.environments.values():
        urls += [spec.index.index_url, *spec.index.extra_index_urls]
        urls += [u for u in spec.index.find_links if "://" in u]
    hosts = {h.lower().strip("[]") for h in settings.sources.private_hosts}
    hosts |= {urlsplit(u).hostname or "" for u in urls} - {""}
    upstream: list[tuple[str, Upstream]] = []
    for scheme in ("http", "https"):
        value = env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY")
        found = Upstream.from_url(value) if value else None
        if found is not None:
            upstream.append((scheme, found))
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    direct = tuple(d.strip().lower() for d in no_proxy.split(",") if d.strip())
    return EgressPolicy(frozenset(hosts), tuple(upstream), direct)


def through(proxy_url: str, env: dict[str, str]) -> dict[str, str]:
    """`env` with every request of the program going to `proxy_url`, none around it (the
    same variables the driver sets in a build container)."""
    kept = {k: v for k, v in env.items() if k not in NO_PROXY_NAMES}
    return kept | dict.fromkeys(PROXY_NAMES, proxy_url)


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
