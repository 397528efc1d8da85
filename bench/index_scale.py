"""The index at scale: the catalog database beside today's in-memory catalog, same store, one run.

    .venv/bin/python bench/index_scale.py [--sizes 1000,10000,50000] [--old /work/main] [--s3 5000]

A local store is filled with N committed manifests over 20 environments (one real `publish()`
with a build's sections, cloned per build: 25 projects per environment, versions beyond).
Each API runs as `uvicorn --factory service.api.app:create_app` in its own process over that
store: `new` is this tree (its catalog filled first by `reindex`, timed: manifests per second),
`old` is the tree at `--old` (today's catalog: every manifest read at the first request, the
store listed again every 10 s). Measured per API: cold start until the first project page
answers (and from the moment it listens: the catalog's part, imports aside), page p50/p99 with
10 concurrent keep-alive clients on random project pages (JSON), RSS of the API process after
the load, and its CPU seconds over 20 s idle (x3: per minute). `--s3 N`: reindex throughput
from moto's S3 server (its own process on loopback) holding N of those manifests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from service.artifacts import publish
from service.config import Settings
from service.index.reindex import reindex
from service.index.sql import open_catalog
from service.store import LocalStore, S3Store
from tests.fixtures.wheels import make_wheel

ENVIRONMENTS = 20
PROJECTS = 25
CLIENTS = 10
REQUESTS_PER_CLIENT = 100
IDLE_S = 20
JSON_V1 = "application/vnd.pypi.simple.v1+json"
BUILD_SECTIONS = {
    "inputs": {
        "target": {"kind": "cuda", "cuda": "13.0", "python": "3.11"},
        "runtime": ["torch==2.13.0", "numpy==2.1.0"],
        "build_env": {"TORCH_CUDA_ARCH_LIST": "8.0;9.0", "MAX_JOBS": "8"},
        "source": {"kind": "index", "name": "pkg", "sha256": "0" * 64},
    },
    "stages": [{"name": n, "seconds": 12.5, "image": "sha256:" + "1" * 64} for n in range(6)],
    "freeze": {"runtime": [f"dep{n}==1.{n}" for n in range(40)]},
    "verify": {
        "imported": ["pkg"],
        "cuda": {"arch_list": "8.0;9.0", "sass": ["sm_80", "sm_90"], "ptx": [], "modules": {}},
        "gpu": {"present": False, "kernel_run": False, "reason": "no GPU in the verify stage"},
    },
}


def environment(number: int) -> str:
    return f"cu130-py311-torch2.13.0-{number:08x}"


def fill_store(root: Path, count: int) -> list[tuple[str, str]]:
    """`count` manifests cloned from one real publish; returns the (environment, project) pages."""
    store = LocalStore(root)
    seed = make_wheel(root.parent / "seed", "seed", "1.0")
    first = publish(
        store, environment=environment(0), request_key="seed", wheel=seed, manifest=BUILD_SECTIONS
    )
    template = json.loads(store.get(first.manifest_key))
    store.delete(first.manifest_key)
    pages = set()
    for number in range(count):
        env = environment(number % ENVIRONMENTS)
        project = f"proj-{(number // ENVIRONMENTS) % PROJECTS:02d}"
        version = f"1.{number // (ENVIRONMENTS * PROJECTS)}.{number % 7}"
        stem = project.replace("-", "_")
        wheel = dict(template["wheel"])
        wheel.update(
            filename=f"{stem}-{version}-py3-none-any.whl",
            project=project,
            version=version,
            environment=env,
            request_key=f"r{number:07d}",
        )
        folder = root / "builds" / env
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"r{number:07d}.json").write_text(json.dumps({**template, "wheel": wheel}))
        pages.add((env, project))
    return sorted(pages)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def api(
    tree: Path, home: Path, first_page: str
) -> Iterator[tuple[subprocess.Popen[bytes], str, float]]:
    """The API of `tree` over `home`; yields the process, its URL and its cold start (s)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    python = tree / ".venv" / "bin" / "python"
    env = {**os.environ, "WHEELWRIGHT_HOME": str(home), "PYTHONPATH": str(tree)}
    command = [
        str(python),
        "-m",
        "uvicorn",
        "--factory",
        "service.api.app:create_app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=600).status_code == 200:
                    break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise SystemExit(f"the API of {tree} did not start") from None
                time.sleep(0.05)  # no event to await from another process but its port
        listening = time.perf_counter()
        httpx.get(url + first_page, timeout=600).raise_for_status()
        done = time.perf_counter()
        yield process, url, (done - started, done - listening)
    finally:
        process.terminate()
        process.wait(timeout=30)


def load(url: str, pages: list[tuple[str, str]]) -> tuple[float, float]:
    samples: list[float] = []
    lock = threading.Lock()

    def client(seed: int) -> None:
        chosen = random.Random(seed)  # noqa: S311 - which page to ask for, not a secret
        mine = []
        with httpx.Client(base_url=url, headers={"Accept": JSON_V1}, timeout=600) as http:
            for _ in range(REQUESTS_PER_CLIENT):
                env, project = chosen.choice(pages)
                start = time.perf_counter()
                http.get(f"/simple/{env}/{project}/").raise_for_status()
                mine.append(time.perf_counter() - start)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.99) - 1] * 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(tree: Path, home: Path, pages: list[tuple[str, str]]) -> dict[str, float]:
    env, project = pages[0]
    with api(tree, home, f"/simple/{env}/{project}/") as (process, url, (cold, first)):
        p50, p99 = load(url, pages)
        rss = rss_mb(process.pid)
        before = cpu_s(process.pid)
        time.sleep(IDLE_S)  # idle on purpose: what the process spends with no request at all
        idle = (cpu_s(process.pid) - before) * 60 / IDLE_S
    return {
        "cold_s": cold,
        "first_s": first,
        "p50_ms": p50,
        "p99_ms": p99,
        "rss_mb": rss,
        "idle_cpu_s_min": idle,
    }


def s3_reindex(count: int) -> None:
    import boto3

    from tests.integration.s3_server import moto_server

    with tempfile.TemporaryDirectory(prefix="wheelwright-scale-s3-") as tmp, moto_server() as url:
        home = Path(tmp) / "home"
        fill_store(home / "store", count)
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto's, on loopback
        )
        client.create_bucket(Bucket="bench")
        store = S3Store(client, "bench")
        files = sorted((home / "store" / "builds").rglob("*.json"))
        with ThreadPoolExecutor(max_workers=16) as pool:
            keys = [str(f.relative_to(home / "store")) for f in files]
            list(pool.map(lambda k: store.put(k, (home / "store" / k).read_bytes()), keys))
        catalog = open_catalog(Settings(home=Path(tmp) / "s3-home"))
        started = time.perf_counter()
        done = reindex(store, catalog, workers=32)
        took = time.perf_counter() - started
        print(
            f"{count:>7} reindex (S3, moto, 32 readers): {done.manifests} manifests in "
            f"{took:.1f} s, {done.manifests / took:.0f}/s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--old", type=Path, default=None, help="a checkout of today's catalog")
    parser.add_argument("--s3", type=int, default=0, help="reindex N manifests from moto S3")
    args = parser.parse_args()
    if args.s3:
        s3_reindex(args.s3)
    new_tree = Path(__file__).resolve().parent.parent
    print(
        f"{'N':>7} {'api':>4} {'cold start s':>12} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'first page s':>12} {'RSS MB':>7} {'idle CPU s/min':>14}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="wheelwright-scale-") as tmp:
            home = Path(tmp) / "home"
            pages = fill_store(home / "store", size)
            started = time.perf_counter()
            done = reindex(LocalStore(home / "store"), open_catalog(Settings(home=home)))
            took = time.perf_counter() - started
            rows: dict[str, dict[str, float]] = {"new": measure(new_tree, home, pages)}
            if args.old is not None:
                old_home = Path(tmp) / "old-home"
                old_home.mkdir()
                (old_home / "store").symlink_to(home / "store")
                rows["old"] = measure(args.old, old_home, pages)
            for name, row in rows.items():
                print(
                    f"{size:>7} {name:>4} {row['cold_s']:>12.2f} {row['p50_ms']:>8.1f} "
                    f"{row['p99_ms']:>8.1f} {row['first_s']:>12.3f} {row['rss_mb']:>7.0f} "
                    f"{row['idle_cpu_s_min']:>14.2f}"
                )
            if "old" in rows:
                old, new = rows["old"], rows["new"]
                print(
                    f"{size:>7} old/new: cold start x{old['cold_s'] / new['cold_s']:.1f}, "
                    f"first page once listening x{old['first_s'] / new['first_s']:.0f}, "
                    f"p50 x{old['p50_ms'] / new['p50_ms']:.1f}, "
                    f"RSS x{old['rss_mb'] / new['rss_mb']:.1f}"
                )
            print(
                f"{size:>7} reindex (local store): {done.manifests} manifests in {took:.1f} s, "
                f"{done.manifests / took:.0f}/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
