"""The egress proxy, the only way out of a build container with the network: real sockets on
this machine's loopback only. It refuses this host's own addresses (a refused destination is
never connected to), serves https tunnels and http requests to allowed ones, goes through the
operator's own proxy where the worker has one, and the driver's forwarder joins a loopback port
in the container to its unix socket."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import load_settings
from service.egress import (
    EgressPolicy,
    EgressProxy,
    EgressRefused,
    allow_entry,
    own_address,
    private_address,
)
from service.errors import ConfigError, FetchError, SourceNotFoundError
from service.models import parse_request
from tests.loopback import Origin, serving
from worker.driver.egress import forward
from worker.fetch import download_sdist
from worker.git import Git


def loopback(port: int) -> EgressPolicy:
    """The operator's allow-list with one port of this machine's loopback on it."""
    return EgressPolicy.allowing(f"127.0.0.1:{port}")


@pytest.fixture
def origin() -> Iterator[Origin]:
    with serving(Origin()) as server:
        yield server


def ask(path: Path, raw: bytes) -> bytes:
    """Send `raw` to the proxy's unix socket; everything it answers until it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(raw)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),  # a cloud's metadata service
        ("100.64.0.1", True),
        ("0.0.0.0", True),  # noqa: S104  (an address to judge, not to bind)
        ("224.0.0.1", True),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("8.8.8.8", False),
        ("151.101.0.223", False),
        ("203.0.113.80", False),  # documentation ranges are nobody's own network
        ("2606:4700::1", False),
    ],
)
def test_the_addresses_of_this_host_and_its_networks_are_private(
    address: str, private: bool
) -> None:
    assert private_address(ipaddress.ip_address(address)) is private


def test_a_private_destination_is_refused_by_name_unless_the_operator_allows_it() -> None:
    with pytest.raises(EgressRefused, match=r"127\.0\.0\.1, an address of this host"):
        EgressPolicy().check("127.0.0.1", 6379)
    with pytest.raises(EgressRefused, match=r"localhost is (127\.0\.0\.1|::1)"):
        EgressPolicy().check("localhost", 8000)
    with pytest.raises(EgressRefused, match=r"sources\.private_hosts"):
        EgressPolicy().check("[::1]", 443)
    assert loopback(6379).check("127.0.0.1", 6379) == [(ipaddress.ip_address("127.0.0.1"), 6379)]
    with pytest.raises(EgressRefused, match="no such port"):
        loopback(6379).check("127.0.0.1", 0)
    with pytest.raises(EgressRefused, match="cannot resolve"):
        EgressPolicy().check("no-such-host.invalid", 443)


def test_the_operator_allows_the_service_its_indexes_and_private_hosts() -> None:
    settings = load_settings(
        public_url="http://wheels.internal:8000",
        index={"extra_index_urls": ["http://mirror.corp:3141/simple"]},
        environments={
            "team": {
                "target": {"kind": "cpu"},
                "index": {"find_links": ["https://links.corp/wheels/"]},
            }
        },
        sources={"private_hosts": ["Registry.Corp", "[fd00::5]"]},
    )
    policy = EgressPolicy.from_settings(settings, environ={})
    assert policy.allowed == {
        ("wheels.internal", 8000),
        ("mirror.corp", 3141),
        ("links.corp", 443),
        ("pypi.org", 443),
        ("registry.corp", 80),  # a bare host: its URLs' default ports, no other
        ("registry.corp", 443),
        ("fd00::5", 80),
        ("fd00::5", 443),
    }
    assert policy.upstream == ()
    behind = EgressPolicy.from_settings(
        settings,
        environ={"HTTPS_PROXY": "http://u%40x:p%3Aw@proxy.corp:3128", "NO_PROXY": "corp,.lan"},
    )
    (scheme, upstream), *_ = behind.upstream
    assert (scheme, upstream.host, upstream.port) == ("https", "proxy.corp", 3128)
    assert upstream.authorization == "Basic dUB4OnA6dw=="  # "u@x:p:w"
    assert behind.upstream_for("https", "files.pythonhosted.org") == upstream
    assert behind.upstream_for("https", "mirror.corp") is None  # NO_PROXY
    assert behind.upstream_for("https", "a.lan") is None
    assert behind.upstream_for("http", "pypi.org") is None  # no HTTP_PROXY


def test_an_http_request_to_an_allowed_host_is_sent_on_and_closed(
    tmp_path: Path, origin: Origin
) -> None:
    with EgressProxy(tmp_path / "proxy.sock", loopback(origin.port)) as proxy:
        answer = ask(
            proxy.path,
            f"GET http://127.0.0.1:{origin.port}/simple/torch/?x=1 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{origin.port}\r\nProxy-Connection: keep-alive\r\n"
            "Proxy-Authorization: Basic c2VjcmV0\r\n\r\n".encode(),
        )
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"hello from the origin")
    ((path, headers),) = origin.requests
    assert path == "/simple/torch/?x=1"  # origin-form, as a server expects it
    assert headers["Connection"] == "close"
    assert "Proxy-Authorization" not in headers and "Proxy-Connection" not in headers


def test_a_tunnel_to_an_allowed_host_carries_bytes_both_ways(
    tmp_path: Path, origin: Origin
) -> None:
    with EgressProxy(tmp_path / "proxy.sock", loopback(origin.port)) as proxy:
        answer = ask(
            proxy.path,
            f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET /inside HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        )
    assert answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.0 200")
    assert [path for path, _ in origin.requests] == ["/inside"]


def test_a_private_destination_is_answered_403_and_never_connected_to(
    tmp_path: Path, origin: Origin
) -> None:
    refused: list[str] = []
    with EgressProxy(tmp_path / "p.sock", EgressPolicy(), on_refused=refused.append) as proxy:
        tunnel = ask(proxy.path, f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n".encode())
        plain = ask(
            proxy.path, f"GET http://localhost:{origin.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
    assert tunnel.startswith(b"HTTP/1.1 403 Forbidden")
    assert b"wheelwright egress: 127.0.0.1 is 127.0.0.1, an address of this host" in tunnel
    assert plain.startswith(b"HTTP/1.1 403 Forbidden") and b"localhost is" in plain
    assert origin.requests == []
    assert len(refused) == 2 and "sources.private_hosts" in refused[0]


def machine_address() -> str:
    """This machine's own address on the way out (its default route), not loopback: on these
    machines 192.0.2.2, a documentation-range address that no private range covers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("203.0.113.80", 443))  # no packet is sent: this only picks a route
        address: str = probe.getsockname()[0]
    assert not address.startswith("127."), "this machine has no address but loopback"
    return address


def test_an_address_of_this_machines_own_interfaces_is_its_own_whatever_its_range() -> None:
    assert own_address(ipaddress.ip_address("127.0.0.1"))
    assert own_address(ipaddress.ip_address(machine_address()))
    assert own_address(ipaddress.ip_address(f"::ffff:{machine_address()}"))
    assert not own_address(ipaddress.ip_address("203.0.113.80"))
    assert not own_address(ipaddress.ip_address("8.8.8.8"))


def test_this_machines_own_public_address_is_refused_and_never_connected_to(
    tmp_path: Path,
) -> None:
    """A service listening on all interfaces is reached through any of the machine's
    addresses, not only the private ones: the machine's own address is refused whatever its
    range (here 192.0.2.2, in no private range)."""
    own = machine_address()
    with (
        serving(Origin(host="0.0.0.0")) as everywhere,  # noqa: S104  (as Redis or the API may)
        EgressProxy(tmp_path / "p.sock", EgressPolicy()) as proxy,
    ):
        tunnel = ask(proxy.path, f"CONNECT {own}:{everywhere.port} HTTP/1.1\r\n\r\n".encode())
        plain = ask(
            proxy.path,
            f"GET http://{own}:{everywhere.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        )
    assert tunnel.startswith(b"HTTP/1.1 403 Forbidden"), tunnel
    assert f"{own} is {own}, an address of this host".encode() in tunnel
    assert plain.startswith(b"HTTP/1.1 403 Forbidden"), plain
    assert everywhere.requests == []


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"HELLO\r\n\r\n", b"not an HTTP/1 request line"),
        (b"GET ftp://example.org/ HTTP/1.1\r\n\r\n", b"only CONNECT and http:// URLs"),
        (b"GET /relative HTTP/1.1\r\n\r\n", b"only CONNECT and http:// URLs"),
        (b"CONNECT example.org:https HTTP/1.1\r\n\r\n", b"not host:port"),
        (b"GET http://a/ HTTP/1.1\r\nno colon here\r\n\r\n", b"a malformed header line"),
    ],
)
def test_what_is_no_proxy_request_is_answered_400(tmp_path: Path, raw: bytes, why: bytes) -> None:
    with EgressProxy(tmp_path / "proxy.sock", EgressPolicy()) as proxy:
        answer = ask(proxy.path, raw)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request") and why in answer


def test_a_tunnel_goes_through_the_operators_proxy_where_the_worker_has_one(
    tmp_path: Path, origin: Origin
) -> None:
    """The operator's proxy gets the CONNECT (with its credentials) and answers the stage."""
    heads: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def operator_proxy() -> None:  # a tunnel to the origin, whatever was asked
        conn, _ = listener.accept()
        with conn, socket.create_connection(("127.0.0.1", origin.port)) as out:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            head, _, rest = data.partition(b"\r\n\r\n")
            heads.append(head)
            conn.sendall(b"HTTP/1.1 200 OK from upstream\r\n\r\n")
            conn.settimeout(10)
            out.sendall(rest or conn.recv(4096))
            conn.sendall(_read_all(out))

    threading.Thread(target=operator_proxy, daemon=True).start()
    port = listener.getsockname()[1]
    environ = {"HTTPS_PROXY": f"http://ops:s3cret@127.0.0.1:{port}"}
    settings = load_settings(sources={"private_hosts": ["127.0.0.1"]})
    policy = EgressPolicy.from_settings(settings, environ=environ)
    with EgressProxy(tmp_path / "proxy.sock", policy) as proxy:
        answer = ask(
            proxy.path,
            b"CONNECT 203.0.113.7:443 HTTP/1.1\r\n\r\n"
            b"GET /through HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    listener.close()
    assert answer.startswith(b"HTTP/1.1 200 OK from upstream\r\n\r\nHTTP/1.0 200")
    assert heads[0].startswith(b"CONNECT 203.0.113.7:443 HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic b3BzOnMzY3JldA==" in heads[0]
    assert [path for path, _ in origin.requests] == ["/through"]


def test_a_socket_path_too_long_for_a_socket_address_still_serves(
    tmp_path: Path, origin: Origin
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    seen = tmp_path / "s"  # the socket's folder as a container sees it: a short path
    seen.symlink_to(deep)
    with EgressProxy(deep / "proxy.sock", loopback(origin.port)):
        assert (deep / "proxy.sock").is_socket()
        answer = ask(
            seen / "proxy.sock",
            f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n"
            "GET /long HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        )
    assert answer.startswith(b"HTTP/1.1 200 Connection established")
    assert not (deep / "proxy.sock").exists()  # removed with the proxy


def test_the_drivers_forwarder_joins_a_loopback_port_to_the_proxy(
    tmp_path: Path, origin: Origin
) -> None:
    with EgressProxy(tmp_path / "proxy.sock", loopback(origin.port)) as proxy:
        port = forward(str(proxy.path))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                f"GET http://127.0.0.1:{origin.port}/via-forwarder HTTP/1.1\r\n"
                "Host: x\r\n\r\n".encode()
            )
            answer = _read_all(sock)
    assert answer.endswith(b"hello from the origin")
    assert [path for path, _ in origin.requests] == ["/via-forwarder"]


def test_the_workers_git_reaches_no_private_host(tmp_path: Path, origin: Origin) -> None:
    """git's https goes through the proxy (refused: the listener never sees it), and so does its
    ssh (`worker.ssh_tunnel`; submodules in tests/unit/test_source_policy.py)."""
    git = Git(allow_file=False, egress=EgressPolicy())
    refusal = r"git ls-remote failed: egress refused: 127\.0\.0\.1 is 127\.0\.0\.1, an address"
    with pytest.raises(FetchError, match=refusal):
        git.resolve_ref("ssh://git@127.0.0.1/acme/app.git", "main")
    with pytest.raises(FetchError, match=refusal):
        git.resolve_ref(f"https://127.0.0.1:{origin.port}/acme/app.git", "main")
    assert origin.requests == []


def test_the_workers_sdist_download_reaches_no_private_index(
    tmp_path: Path, origin: Origin
) -> None:
    request = parse_request(
        {
            "source": {"kind": "requirement", "requirement": "demo==1.0"},
            "index": {"index_url": f"http://127.0.0.1:{origin.port}/simple"},
        }
    )
    with pytest.raises(FetchError, match=r"refused: 127\.0\.0\.1 is 127\.0\.0\.1"):
        download_sdist(request, tmp_path, EgressPolicy())
    assert origin.requests == []
    with pytest.raises(SourceNotFoundError):  # allowed: asked, and it has no such project
        download_sdist(request, tmp_path, loopback(origin.port))
    assert [path for path, _ in origin.requests] == ["/simple/demo/"]


@pytest.mark.parametrize(
    ("entry", "allowed"),
    [
        ("pypi.corp.internal:443", {("pypi.corp.internal", 443)}),
        ("Registry.Corp", {("registry.corp", 80), ("registry.corp", 443)}),
        ("[fd00::5]:8443", {("fd00::5", 8443)}),
        ("[fd00::5]", {("fd00::5", 80), ("fd00::5", 443)}),
        ("fd00::5", {("fd00::5", 80), ("fd00::5", 443)}),
    ],
)
def test_an_allow_list_entry_is_a_host_and_port(entry: str, allowed: set[tuple[str, int]]) -> None:
    assert allow_entry(entry) == allowed


@pytest.mark.parametrize("entry", ["host:http", "[fd00::5", "[fd00::5]x", "host:70000", ":443", ""])
def test_a_malformed_allow_list_entry_is_refused_by_name(entry: str) -> None:
    with pytest.raises(ConfigError, match=r"sources\.private_hosts"):
        EgressPolicy.from_settings(load_settings(sources={"private_hosts": [entry]}), environ={})


def test_an_allowed_private_host_opens_its_port_and_no_other(tmp_path: Path) -> None:
    """Allowing a team's index on this host lets in that port only: not Redis beside it, and a
    bare host means its URLs' default ports (80, 443), not every port."""
    with serving(Origin()) as index, serving(Origin()) as redis_like:
        settings = load_settings(sources={"private_hosts": [f"127.0.0.1:{index.port}"]})
        for policy in (
            EgressPolicy.from_settings(settings, environ={}),
            EgressPolicy.allowing("127.0.0.1"),
        ):
            with EgressProxy(tmp_path / "p.sock", policy) as proxy:
                other = ask(
                    proxy.path, f"CONNECT 127.0.0.1:{redis_like.port} HTTP/1.1\r\n\r\n".encode()
                )
                assert other.startswith(b"HTTP/1.1 403 Forbidden"), other
                assert b"sources.private_hosts" in other
        with EgressProxy(tmp_path / "p.sock", EgressPolicy.from_settings(settings)) as proxy:
            asked = ask(
                proxy.path,
                f"GET http://127.0.0.1:{index.port}/simple/ HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
            )
        assert asked.startswith(b"HTTP/1.0 200")
        assert index.paths == ["/simple/"]
        assert redis_like.requests == []


def test_the_policy_is_the_operators_whatever_a_project_environment_adds() -> None:
    """A configured index allows its own host:port, nothing else of the host; the service's
    own address is allowed only as `own` (the port it serves on) or `public_url`."""
    settings = load_settings(index={"index_url": "http://127.0.0.1:3141/simple/"})
    policy = EgressPolicy.from_settings(settings, own="http://127.0.0.1:8000", environ={})
    assert policy.allows("127.0.0.1", 3141) and policy.allows("127.0.0.1", 8000)
    assert not policy.allows("127.0.0.1", 6379)
    assert policy.refusal("http://127.0.0.1:6379/") is not None
    assert policy.refusal("http://127.0.0.1:3141/simple/") is None
    assert policy.refusal("https://203.0.113.80/simple/") is None  # public: the proxy decides
    assert policy.refusal("/srv/wheels") is None  # a folder: the folder allow-list decides
