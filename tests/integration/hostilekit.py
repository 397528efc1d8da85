"""Hostile sdists: packages whose own code tries to reach past its build.

`hostile_sdist` writes a setuptools sdist whose setup.py, each time it runs (asked for its
requirements, built), performs the attacks named in `attacks` and prints one `probe` line per
attempt saying whether it worked: the tests read those lines in the stored log.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

SETUP = r"""
import json, os, pathlib, sys, threading, time

from setuptools import setup

plan = json.loads(pathlib.Path("hostile.json").read_text())


def probe(what, action):
    try:
        action()
    except BaseException as exc:
        print(f"probe {what}: refused ({type(exc).__name__})", flush=True)
    else:
        print(f"probe {what}: WORKED", flush=True)


def write(path):
    def attempt():
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as out:
            out.write("poisoned by hostile\n")
    return attempt


for attack in plan["attacks"]:
    if attack == "cache":
        probe("shared cache", write("/ww/cache/uv/POISON"))
        probe("shared cache root", write("/ww/cache/POISON"))
    elif attack == "snapshot":
        probe("runtime snapshot", write("/ww/work/runtime/POISON"))
        probe("runtime snapshot file", write("/ww/work/runtime/pyvenv.cfg"))
    elif attack == "host":
        probe("host root", write("/POISON"))
        probe("docker socket", lambda: open("/var/run/docker.sock", "rb"))
    elif attack == "compiler_cache" and "bdist_wheel" in sys.argv:  # a trojaned object
        folder = os.environ.get("SCCACHE_DIR", "/nonexistent")
        probe("compiler cache", write(os.path.join(folder, "f", "0", "f0-trojan")))
    elif attack.startswith("leak:"):
        print("leaking " + attack.split(":", 1)[1], flush=True)
    elif attack.startswith("long_line:"):
        sys.stdout.write("L" * int(attack.split(":", 1)[1]) + "\n")
        sys.stdout.flush()
    elif attack.startswith("flood:"):
        line = "F" * 1000
        for _ in range(int(attack.split(":", 1)[1])):
            print(line)
        sys.stdout.flush()
    elif attack == "needs_network" and "egg_info" in sys.argv:  # asked for its requirements
        import urllib.request

        urllib.request.urlopen("https://pypi.org/simple/", timeout=60).close()
        print("probe network: reached pypi.org", flush=True)
    elif attack.startswith("host_network:") and "egg_info" in sys.argv:
        import socket, urllib.request

        port = int(attack.split(":", 1)[1])

        def banner():  # WORKED only where the test's own listener on the host answers
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                if not sock.recv(64).startswith(b"host-listener"):
                    raise ConnectionError("not the host's listener")

        probe("host loopback", banner)
        for where in (f"127.0.0.1:{port}", f"localhost:{port}"):
            fetch = lambda: urllib.request.urlopen(f"http://{where}/", timeout=20).close()
            probe(f"host {where.split(':')[0]} through the proxy", fetch)
    elif attack == "terminal" and "bdist_wheel" in sys.argv:  # steer the reader's terminal
        sys.stdout.write("\x1b]52;c;cHduZWQ=\x07")  # OSC 52: write the clipboard
        sys.stdout.write("\x1b]0;owned title\x07")  # the window title
        sys.stdout.write("progress 10%\rprogress 100%\n")  # a redraw
        sys.stdout.write("hidden below\x1b[1A\x1b[2K\n")  # cursor up, erase the line
        sys.stdout.write("c1 \x9b31m red \x7f\n")  # a C1 CSI, DEL
        sys.stdout.flush()
        raise SystemExit("terminal attack done")
    elif attack == "threads" and "bdist_wheel" in sys.argv:
        while True:
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    elif attack == "memory" and "bdist_wheel" in sys.argv:
        hog = []
        while True:
            hog.append(bytearray(64 * 1024 * 1024))

setup(name=plan["name"], version=plan["version"], py_modules=["hostile_mod"])
"""


def hostile_sdist(
    dest: Path,
    attacks: list[str],
    *,
    name: str = "helper",
    version: str = "1.0",
    filename: str | None = None,
) -> Path:
    """`filename` (default `<name>-<version>.tar.gz`) holding a package that says it is
    `name` `version` in setup.py and performs `attacks` whenever its code runs."""
    stem = (filename or f"{name}-{version}.tar.gz").removesuffix(".tar.gz")
    folder = dest / stem
    folder.mkdir(parents=True)
    (folder / "setup.py").write_text(SETUP)
    (folder / "hostile_mod.py").write_text("VALUE = 1\n")
    (folder / "hostile.json").write_text(
        json.dumps({"name": name, "version": version, "attacks": attacks})
    )
    archive = dest / f"{stem}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive
