"""Index page latency over HTTP on loopback: Wheelwright's API beside pypiserver, same files.

    .venv/bin/python bench/index_latency.py [--requests 200] [--projects 10000] [--files 1000]

One environment holds `--projects` one-file projects plus `big-project` with `--files` files.
Wheelwright serves it from a local store (manifests cloned from one real `publish()`), run as
`uvicorn --factory service.api.app:create_app` in its own process; pypiserver (`pypi-server run`,
its default backend and server) serves empty wheel stubs of the same names from one directory.
Measured: the root page (all projects) and the big project's page, sequential GETs with a
keep-alive client after a warm-up; p50/p95 in milliseconds, and the ratios to pypiserver.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from service.artifacts import publish
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel

ENV = "bench-env"
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def filenames(projects: int, files: int) -> list[tuple[str, str]]:
    names = [("big-project", f"1.0.{n}") for n in range(files)]
    names += [(f"proj-{n:05d}", "1.0") for n in range(projects)]
    return names


def fill_store(root: Path, names: list[tuple[str, str]]) -> None:
    """One real publish, then its manifest cloned for every other (project, version)."""
    store = LocalStore(root)
    seed = make_wheel(root.parent / "seed", "seed", "1.0")
    first = publish(store, environment=ENV, request_key="seed", wheel=seed, manifest={})
    template = json.loads(store.get(first.manifest_key))
    builds = root / "builds" / ENV
    for number, (project, version) in enumerate(names):
        stem = project.replace("-", "_")
        wheel = dict(template["wheel"])
        wheel.update(
            filename=f"{stem}-{version}-py3-none-any.whl",
            project=project,
            version=version,
            request_key=f"r{number}",
        )
        (builds / f"r{number}.json").write_text(json.dumps({**template, "wheel": wheel}))


def fill_stubs(directory: Path, names: list[tuple[str, str]]) -> None:
    directory.mkdir(parents=True)
    for project, version in names:
        (directory / f"{project.replace('-', '_')}-{version}-py3-none-any.whl").touch()


@contextmanager
def server(command: list[str], ready_url: str, env: dict[str, str]) -> Iterator[None]:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(ready_url, timeout=60).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command[0]} did not start")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


def measure(url: str, requests: int, accept: str | None) -> dict[str, float]:
    headers = {"Accept": accept} if accept else {}
    with httpx.Client(headers=headers, timeout=120) as client:
        start = time.perf_counter()
        first = client.get(url)
        cold = time.perf_counter() - start
        first.raise_for_status()
        for _ in range(5):
            client.get(url)
        samples = []
        for _ in range(requests):
            start = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - start)
            response.raise_for_status()
    samples.sort()
    return {
        "first_ms": cold * 1000,
        "p50_ms": statistics.median(samples) * 1000,
        "p95_ms": samples[int(len(samples) * 0.95) - 1] * 1000,
        "bytes": len(first.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=1_000)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    names = filenames(args.projects, args.files)
    results: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="wheelwright-bench-") as tmp:
        work = Path(tmp)
        fill_store(work / "store", names)
        fill_stubs(work / "stubs", names)
        env = {
            **os.environ,
            "WHEELWRIGHT_HOME": str(work),
            "WHEELWRIGHT_STORE__PATH": str(work / "store"),
        }
        port = free_port()
        ours = f"http://127.0.0.1:{port}"
        command = [str(bin_dir / "uvicorn"), "--factory", "service.api.app:create_app"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        with server(command, f"{ours}/healthz", env):
            for label, path in (
                ("root", f"/simple/{ENV}/"),
                ("project", f"/simple/{ENV}/big-project/"),
            ):
                results[("wheelwright html", label)] = measure(
                    ours + path, args.requests, "text/html"
                )
                results[("wheelwright json", label)] = measure(
                    ours + path, args.requests, PIP_ACCEPT
                )
        port = free_port()
        theirs = f"http://127.0.0.1:{port}"
        command = [str(bin_dir / "pypi-server"), "run", "-i", "127.0.0.1", "-p", str(port)]
        command += ["-a", ".", "-P", ".", "--disable-fallback", str(work / "stubs")]
        with server(command, f"{theirs}/health", env):
            for label, path in (("root", "/simple/"), ("project", "/simple/big-project/")):
                results[("pypiserver html", label)] = measure(theirs + path, args.requests, None)
    print(
        f"{args.projects} projects + big-project with {args.files} files; {args.requests} requests"
    )
    print(f"{'server':<18}{'page':<9}{'first ms':>10}{'p50 ms':>10}{'p95 ms':>10}{'KiB':>9}")
    for (name, label), row in results.items():
        print(
            f"{name:<18}{label:<9}{row['first_ms']:>10.1f}{row['p50_ms']:>10.2f}"
            f"{row['p95_ms']:>10.2f}{row['bytes'] / 1024:>9.0f}"
        )
    for label in ("root", "project"):
        base = results[("pypiserver html", label)]
        for name in ("wheelwright html", "wheelwright json"):
            row = results[(name, label)]
            print(
                f"{label}: {name} / pypiserver: p50 x{row['p50_ms'] / base['p50_ms']:.2f}, "
                f"p95 x{row['p95_ms'] / base['p95_ms']:.2f}"
            )


if __name__ == "__main__":
    main()
