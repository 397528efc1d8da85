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
multicast, and any address of this machine's own interfaces, public ones included) unless the
operator allows that host and port (`sources.private_hosts`, `public_url`, an index the
configuration itself names, the port this process serves on), and connects to the very address
it checked. The policy (`EgressPolicy.from_settings`) is made from the operator's configuration
alone: nothing a request or a project's files name widens it. `CONNECT`
tunnels (https) and absolute-form requests (http) are served; anything else is answered 400.
Behind an operator's own proxy (`HTTPS_PROXY` / `HTTP_PROXY` of this process) the tunnel goes
through it.
"""

from service.egress.policy import (
    EgressPolicy,
    EgressRefused,
    Upstream,
    allow_entry,
    own_address,
    private_address,
    serving_at,
    through,
    url_entry,
)
from service.egress.proxy import EgressProxy

__all__ = [
    "EgressPolicy",
    "EgressProxy",
    "EgressRefused",
    "Upstream",
    "allow_entry",
    "own_address",
    "private_address",
    "serving_at",
    "through",
    "url_entry",
]
