"""Where what a request makes reach out may connect: public addresses, and the hosts the
operator allows; the operator's own proxy, if any, as the way out."""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
from dataclasses import dataclass
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
                if private_address(address) or own_address(address):
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
