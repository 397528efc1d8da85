"""ssh for the worker's git, through the egress proxy.

git's https already goes through the proxy; this does the same for ssh, for the URL a request
names and for every submodule at any depth (whose URLs come from the repository itself). The
proxy checks each host as it checks an https one, and connects to the very address it checked.

It runs as `python -I ssh_tunnel.py ...`, by path and stdlib only, so nothing of the checkout
it is run in can be imported in its place, in one of two ways:

- as git's ssh (`GIT_SSH_COMMAND`, with `ssh.variant=ssh`), taking git's arguments
  `[-o OPTION] [-p PORT] [-4|-6] [USER@]HOST COMMAND`: the host must be a plain name or address;
  then ssh runs in batch mode with this file, in tunnel mode, as its ProxyCommand;
- as that ProxyCommand, `--tunnel HOST PORT`: a CONNECT to the proxy named by
  `WHEELWRIGHT_SSH_PROXY`. A refusal goes to stderr, where git shows it; otherwise the bytes go
  both ways between ssh and the tunnel.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import sys
import threading
from contextlib import suppress
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

#: The egress proxy's URL (`http://127.0.0.1:PORT`), set by the worker's git.
PROXY_VAR = "WHEELWRIGHT_SSH_PROXY"
#: A host name or an address literal: nothing a shell or ssh would read as more.
HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:-]{0,252}")
#: The options git gives its ssh (variant "ssh"), and how many arguments each takes.
GIT_OPTIONS = {"-o": 2, "-p": 2, "-4": 1, "-6": 1}


class Refused(Exception):
    """What this will not connect, and why."""


def command() -> str:
    """The `GIT_SSH_COMMAND` that runs this file as git's ssh."""
    return f"{shlex.quote(sys.executable)} -I {shlex.quote(str(Path(__file__).resolve()))}"


def ssh_argv(args: list[str]) -> list[str]:
    """ssh's argv for git's `args`: the same connection, through the tunnel."""
    options: list[str] = []
    port = "22"
    rest = list(args)
    while rest and rest[0].startswith("-"):
        taken = GIT_OPTIONS.get(rest[0])
        if taken is None or len(rest) < taken:
            raise Refused(f"ssh option {rest[0]!r} is not one git passes")
        if rest[0] == "-p":
            port = rest[1]
        else:
            options += rest[:taken]
        rest = rest[taken:]
    if not rest:
        raise Refused("no host to connect to")
    destination, remote = rest[0], rest[1:]
    user, _, host = destination.rpartition("@")
    if not HOST.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise Refused(f"{destination!r} port {port!r} is not a plain host name and port")
    if user and not re.fullmatch(r"[A-Za-z0-9._-]+", user):
        raise Refused(f"{user!r} is not a plain user name")
    tunnel = f"{command()} --tunnel {host} {port}"
    return [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ProxyCommand={tunnel}",
        "-p",
        port,
        *options,
        destination,
        *remote,
    ]


def open_tunnel(proxy_url: str, host: str, port: int) -> tuple[socket.socket, bytes]:
    """A CONNECT tunnel to `host:port` through the proxy, and what came after its answer."""
    parts = urlsplit(proxy_url)
    if not parts.hostname or not parts.port:
        raise Refused(f"{PROXY_VAR} is not a proxy URL: {proxy_url!r}")
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        reason = rest.decode("utf-8", "replace").strip() or head.decode("latin-1")
        reason = reason.removeprefix("wheelwright egress: ")
        sock.close()
        raise Refused(reason or f"the egress proxy did not answer for {target}")
    sock.settimeout(None)
    return sock, rest


def _tunnel(host: str, port: str) -> int:
    proxy = os.environ.get(PROXY_VAR)
    if not proxy:
        raise Refused(f"{PROXY_VAR} is not set: ssh goes only through the egress proxy")
    sock, rest = open_tunnel(proxy, host, int(port))
    if rest:
        os.write(1, rest)

    def upward() -> None:
        while chunk := os.read(0, 65536):
            sock.sendall(chunk)
        with suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=upward, daemon=True).start()
    while chunk := sock.recv(65536):
        os.write(1, chunk)
    return 0


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["--tunnel"] and len(argv) == 3:
            return _tunnel(argv[1], argv[2])
        ssh = ssh_argv(argv)
    except (Refused, OSError) as exc:
        print(f"wheelwright egress: ssh: {exc}", file=sys.stderr)
        return 255
    return _become(ssh)


def _become(argv: list[str]) -> NoReturn:
    """This process replaced by `argv` (ssh, with git's own arguments, checked above)."""
    os.execvp(argv[0], argv)  # noqa: S606


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
