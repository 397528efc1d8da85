"""Helpers for project-build tests: the fixture packages as sdists on a real local PEP 503 index
served over HTTP, and a project that depends on them."""

from __future__ import annotations

import hashlib
import html
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from enginekit import make_sdist, torch_find_links
from packaging.utils import canonicalize_name, parse_sdist_filename

#: fixture folder -> (distribution name, version)
PACKAGES = {
    "project-alpha": ("alpha", "1.0"),
    "project-beta": ("beta", "1.0"),
    "project-pure": ("wheelwright_pure", "1.0"),
}

PROJECT = """\
# a project whose dependencies need building: alpha and beta import torch in their setup.py
[project]
name = "demo-app"
version = "0.1.0"
requires-python = "{requires_python}"
dependencies = [{dependencies}]

[[tool.uv.index]]
name = "fixtures"
url = "{index}"

[tool.uv]
find-links = ["{find_links}"]

[tool.uv.extra-build-dependencies]  # what the builds import, uv's own vocabulary
alpha = [{{ requirement = "torch", match-runtime = true }}]
beta = ["alpha", {{ requirement = "torch", match-runtime = true }}]
"""
DEPENDENCIES = ("torch==2.13.0", "beta==1.0", "wheelwright-pure==1.0")


@contextmanager
def fixture_index(
    root: Path, fixtures: Mapping[str, tuple[str, str]] = PACKAGES, seen: list[str] | None = None
) -> Iterator[str]:
    """The fixture sdists on a PEP 503 index at http://127.0.0.1:PORT/simple/ while it runs;
    `seen` gets each path asked."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    for fixture, (name, version) in fixtures.items():
        make_sdist(fixture, files, name=name, version=version)
    projects: dict[str, list[Path]] = {}
    for sdist in sorted(files.glob("*.tar.gz")):
        projects.setdefault(str(parse_sdist_filename(sdist.name)[0]), []).append(sdist)
    for project, found in projects.items():
        links = "".join(
            f'<a href="../../files/{html.escape(f.name)}#sha256={_sha256(f)}">'
            f"{html.escape(f.name)}</a>\n"
            for f in found
        )
        _page(root / "simple" / project, f"<!DOCTYPE html><html><body>\n{links}</body></html>")
    names = "".join(f'<a href="{canonicalize_name(p)}/">{p}</a>\n' for p in projects)
    _page(root / "simple", f"<!DOCTYPE html><html><body>\n{names}</body></html>")
    with _served(root, seen) as base:
        yield f"{base}/simple/"


@contextmanager
def find_links_page(
    root: Path, fixtures: Mapping[str, tuple[str, str]], seen: list[str] | None = None
) -> Iterator[str]:
    """The fixture sdists on one flat find-links page at http://127.0.0.1:PORT/links/ (as a
    team's private packages are), each link with its sha256; `seen` gets each path asked."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    sdists = [make_sdist(f, files, name=n, version=v) for f, (n, v) in fixtures.items()]
    links = "".join(
        f'<a href="../files/{html.escape(f.name)}#sha256={_sha256(f)}">{html.escape(f.name)}</a>\n'
        for f in sdists
    )
    _page(root / "links", f"<!DOCTYPE html><html><body>\n{links}</body></html>")
    with _served(root, seen) as base:
        yield f"{base}/links/"


@contextmanager
def _served(root: Path, seen: list[str] | None) -> Iterator[str]:
    handler = partial(_Quiet, seen if seen is not None else [], directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="fixture-index", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    """Serves a folder; each path asked is appended to `seen`."""

    def __init__(self, seen: list[str], *args: Any, **kwargs: Any) -> None:
        self._seen = seen
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self._seen.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return


def _page(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(text)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_project(
    folder: Path,
    index: str,
    *,
    dependencies: tuple[str, ...] = DEPENDENCIES,
    requires_python: str = ">=3.11",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = PROJECT.format(
        requires_python=requires_python,
        dependencies=", ".join(f'"{d}"' for d in dependencies),
        index=index,
        find_links=torch_find_links(),
    )
    (folder / "pyproject.toml").write_text(text)
    return folder


def project_env(home: Path, index: str | None = None, *more: str) -> dict[str, str]:
    """The CLI's environment: its own home, the torch folder allowed as a find-links source,
    and the fixture `index` (and `more` indexes, on this machine's loopback) allowed by host
    and port: the operator's allow-list, which a project naming the index cannot widen."""
    named = [] if index is None else [index, *more]
    hosts = [f"127.0.0.1:{urlsplit(url).port}" for url in named]
    return {
        **os.environ,
        "WHEELWRIGHT_HOME": str(home),
        "WHEELWRIGHT_SOURCES__FIND_LINKS": f'["{torch_find_links()}"]',
        "WHEELWRIGHT_SOURCES__PRIVATE_HOSTS": json.dumps(hosts),
    }


def wheelwright(
    env: dict[str, str], *args: str, timeout: int = 1800
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
