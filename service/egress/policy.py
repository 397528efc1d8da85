"""Where what a request makes reach out may connect: public addresses, and the host:port
pairs the operator allows (never one a request or a project names); the operator's own proxy,
if any, as the way out."""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from service.config import Settings
from service.errors import ConfigError
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


def own_address(address: IPAddress) -> bool:
    """An address of one of this machine's own interfaces, whatever its range (a node's public
    or documentation-range address reaches the services listening on all of its interfaces):
    one this machine can bind a socket to."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


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


HostPort = tuple[str, int]
#: The ports a bare host of the allow-list stands for: its URLs' defaults, http and https.
DEFAULT_PORTS = (80, 443)


def _host(name: str) -> str:
    return name.strip().strip("[]").lower()


def allow_entry(entry: str) -> frozenset[HostPort]:
    """One `sources.private_hosts` entry: `host:port` (`[v6]:port`), or a bare host (`host`,
    `[v6]`, `v6`) meaning the default ports of its URLs (80 and 443) only; `ConfigError`
    naming a malformed one."""
    text = entry.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ConfigError(f"sources.private_hosts: {entry!r} is not host or host:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not _host(host) or (port_text and not port_text.isdigit()):
        raise ConfigError(f"sources.private_hosts: {entry!r} is not host or host:port")
    if not port_text:
        return frozenset((_host(host), port) for port in DEFAULT_PORTS)
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"sources.private_hosts: {entry!r} has no such port")
    return frozenset({(_host(host), port)})


def url_entry(url: str) -> HostPort | None:
    """The host and port an http(s) URL connects to (its scheme's default port if none)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return _host(parts.hostname), port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class EgressPolicy:
    """Where a build may connect: public addresses, and the host:port pairs the operator
    allows. Made by `from_settings` from the operator's configuration, and from nothing a
    request or a project's files name."""

    allowed: frozenset[HostPort] = frozenset()
    #: the operator's proxies by scheme ("http", "https"): the way out of this host, if any
    upstream: tuple[tuple[str, Upstream], ...] = ()
    #: hosts reached directly even with an upstream proxy (the operator's NO_PROXY)
    direct: tuple[str, ...] = ()

    @classmethod
    def allowing(cls, *entries: str) -> EgressPolicy:
        """A policy allowing `entries` (as `sources.private_hosts` writes them) and no proxy."""
        return cls(frozenset().union(*(allow_entry(e) for e in entries)))

    @classmethod
    def from_settings(
        cls, settings: Settings, *, own: str | None = None, environ: dict[str, str] | None = None
    ) -> EgressPolicy:
        """The operator's policy: `sources.private_hosts`, the service's own `public_url`, the
        index URLs the configuration names (`[index]`, each `[environments.NAME]`) by host and
        port, and `own`: the address this process serves its index at (`wheelwright serve`'s
        loopback port). The worker's proxies are the upstream.

        Only ever given the operator's settings: a project build makes its policy before it
        adds its own environment (`ProjectEnvironment.settings`, for submitting its builds)."""
        env = dict(os.environ if environ is None else environ)
        urls = [settings.public_url or "", own or "", settings.index.index_url]
        urls += [*settings.index.extra_index_urls, *settings.index.find_links]
        for spec in settings.environments.values():
            urls += [spec.index.index_url, *spec.index.extra_index_urls, *spec.index.find_links]
        allowed: set[HostPort] = set()
        for entry in settings.sources.private_hosts:
            allowed |= allow_entry(entry)
        allowed |= {found for url in urls if (found := url_entry(url)) is not None}
        upstream: list[tuple[str, Upstream]] = []
        for scheme in ("http", "https"):
            value = env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY")
            way_out = Upstream.from_url(value) if value else None
            if way_out is not None:
                upstream.append((scheme, way_out))
        no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
        direct = tuple(d.strip().lower() for d in no_proxy.split(",") if d.strip())
        return cls(frozenset(allowed), tuple(upstream), direct)

    def allows(self, host: str, port: int) -> bool:
        """`host:port` is on the operator's allow-list (whatever its addresses)."""
        return (_host(host), port) in self.allowed

    def check(self, host: str, port: int) -> list[tuple[IPAddress, int]]:
        """The addresses of `host` a build may connect to (all of them, checked), or
        `EgressRefused` naming the one that is on this host's own networks."""
        if not 0 < port < 65536:
            raise EgressRefused(f"{host}:{port}: no such port")
        try:
            infos = socket.getaddrinfo(_host(host), port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise EgressRefused(f"{host}: cannot resolve it ({exc})") from None
        addresses = list(
            dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
        )
        if not self.allows(host, port):
            for address in addresses:
                if private_address(address) or own_address(address):
                    raise EgressRefused(
                        f"{host} is {address}, an address of this host or its own networks: "
                        "what a request or a build makes reach out reaches public addresses "
                        "only (the operator may allow a host and port in sources.private_hosts)"
                    )
        return [(address, port) for address in addresses]

    def refusal(self, url: str) -> str | None:
        """Why the policy refuses what `url` (http or https) names, or None: a host that
        resolves to this host or its networks, not allowed with that port. A name that does
        not resolve now is left to the proxy, which resolves again when it connects."""
        found = url_entry(url)
        if found is None:
            return None
        try:
            self.check(*found)
        except EgressRefused as exc:
            return None if "cannot resolve" in str(exc) else str(exc)
        return None

    def upstream_for(self, scheme: str, host: str) -> Upstream | None:
        name = _host(host)
        if any(name == d or name.endswith(f".{d.lstrip('.')}") for d in self.direct):
            return None
        return dict(self.upstream).get(scheme)


def serving_at(settings: Settings, url: str) -> Settings:
    """The settings of a process that serves the API and index at `url` itself (`wheelwright
    serve`'s port, the CLI's `--url`): that host and port added to `sources.private_hosts`,
    so its own builds and uv reach the pages it serves, and nothing else of this host."""
    found = url_entry(url)
    if found is None:
        return settings
    host, port = found
    entry = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sources = settings.sources.model_copy(
        update={"private_hosts": (*settings.sources.private_hosts, entry)}
    )
    return settings.model_copy(update={"sources": sources})


def through(proxy_url: str, env: dict[str, str]) -> dict[str, str]:
    """`env` with every request of the program going to `proxy_url`, none around it (the
    same variables the driver sets in a build container)."""
    kept = {k: v for k, v in env.items() if k not in NO_PROXY_NAMES}
    return kept | dict.fromkeys(PROXY_NAMES, proxy_url)
