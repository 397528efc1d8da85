"""The dashboard under a team's history, in one run: a real Redis, `wheelwright serve`.

Records 10,000 builds in Redis (the job state a deployed service keeps), gives one finished build
a 100 MB log in the store and one running build a 100 MB log stream in Redis, then measures:

- time to first byte of the builds page (`/ui/`), unfiltered and filtered (goal: p50 < 100 ms);
- the page of the build with the 100 MB log: its size (goal < 1 MB) and load time (goal < 1 s).

    .venv/bin/python bench/dashboard_latency.py [--builds 10000] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from s3_server import free_port  # noqa: E402
from servicekit import Service  # noqa: E402

from service import layout  # noqa: E402
from service.jobs import RedisJobs  # noqa: E402
from service.models import BuildRecord, Requester, StageTiming, parse_request  # noqa: E402
from service.store import LocalStore  # noqa: E402

PROJECTS = ("flash-attn", "causal-conv1d", "torch-scatter", "fused-ops", "xformers")
ENVIRONMENTS = ("cu130-torch2-13", "cu128-torch2-9", "cpu-py311-torch2-13")
STAGES = (("fetch", True), ("runtime", True), ("build_deps", True), ("build", False))
LOG_MB = 100


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server without persistence: the bench measures the dashboard, not fsync."""
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: run scripts/host-services.sh")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    jobs = RedisJobs.from_url(url)
    for _ in range(100):
        try:
            jobs.ping()
            break
        except Exception:  # not up yet
            time.sleep(0.05)
    return process, url


def record(n: int, now: float) -> BuildRecord:
    project = PROJECTS[n % len(PROJECTS)]
    version = f"2.{n % 9}.{n % 7}"
    request = parse_request(
        {"source": {"kind": "requirement", "requirement": f"{project}=={version}"}}
    )
    created = now - (10_000 - n) * 60.0
    return BuildRecord(
        id=f"bench{n:011d}",
        request=request,
        request_key=f"key{n:011d}",
        environment=ENVIRONMENTS[n % len(ENVIRONMENTS)],
        queue="cpu",
        project=project,
        created_at=created,
        requested_by=Requester(via="cli", token="ci"),  # noqa: S106  (a name)
    )


def fill(jobs: RedisJobs, count: int) -> list[BuildRecord]:
    now = time.time()
    records = []
    for n in range(count):
        made, _ = jobs.create(record(n, now))
        jobs.start(made.id)
        for name, network in STAGES:
            jobs.record_stage(
                made.id, StageTiming(name=name, seconds=3.0 + n % 50, network=network)
            )
        state = "failed" if n % 11 == 0 else "succeeded"
        jobs.finish(made.id, state, error="boom" if state == "failed" else None)
        records.append(made)
    return records


def big_stored_log(store: LocalStore, build_id: str) -> int:
    line = "x" * 199 + "\n"
    chunk = (f"\x1b[32mcc\x1b[0m {line}" * 5000).encode()
    path = Path(tempfile.mkstemp(prefix="biglog-")[1])
    try:
        with path.open("wb") as out:
            while out.tell() < LOG_MB * 1024 * 1024:
                out.write(chunk)
        with path.open("rb") as stream:
            return store.put(layout.build_log_key(build_id), stream).size
    finally:
        path.unlink()


def ttfb(client: httpx.Client, path: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with client.stream("GET", path) as response:
            body = response.iter_raw()
            next(body)
            times.append((time.perf_counter() - started) * 1000)
            for _rest in body:
                pass
            assert response.status_code == 200, response.status_code
    return times


def load(client: httpx.Client, path: str, count: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        size = len(response.content)
    return times, size


def report(label: str, times: list[float], extra: str = "") -> None:
    print(
        f"{label:<58} p50 {statistics.median(times):7.1f} ms  p90 {percentile(times, 0.9):7.1f}"
        f" ms  max {max(times):7.1f} ms{extra}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis_process, url = start_redis(tmp)
        svc = Service(home=tmp / "home", redis_url=url)
        try:
            jobs = RedisJobs.from_url(url)
            started = time.monotonic()
            records = fill(jobs, args.builds)
            print(
                f"recorded {len(records)} builds in {time.monotonic() - started:.1f}s", flush=True
            )
            stored = records[-1].id
            size = big_stored_log(LocalStore(svc.home / "store"), stored)
            print(f"stored log of build {stored}: {size / 2**20:.0f} MiB", flush=True)
            live, _ = jobs.create(record(args.builds, time.time() + 120))
            jobs.start(live.id)
            jobs.record_stage(live.id, StageTiming(name="fetch", seconds=None, network=True))
            lines = LOG_MB * 1024 * 1024 // 1000
            for n in range(lines):
                jobs.append_log(live.id, f"\x1b[33mline {n}\x1b[0m " + "y" * 980)
            print(f"live log of build {live.id}: {lines} lines of 1000 bytes in Redis", flush=True)

            os.environ.pop("WHEELWRIGHT_CONFIG", None)
            svc.start_api()
            with httpx.Client(base_url=svc.url, timeout=30) as client:
                ttfb(client, "/ui/", 10)  # warm: templates compiled, connections open
                report("TTFB /ui/ (10,000 builds, newest 50)", ttfb(client, "/ui/", args.requests))
                report(
                    "TTFB /ui/?project=fused-ops",
                    ttfb(client, "/ui/?project=fused-ops", args.requests),
                )
                report(
                    "TTFB /ui/?state=failed&environment=cu130-torch2-13",
                    ttfb(client, "/ui/?state=failed&environment=cu130-torch2-13", args.requests),
                )
                older = f"/ui/?before={records[5000].created_at!r}"
                report("TTFB /ui/?before=... (page from the middle)", ttfb(client, older, 50))
                for label, path in (
                    ("finished build, 100 MB log in the store", f"/ui/builds/{stored}"),
                    ("  its first log page", f"/ui/builds/{stored}?offset=0"),
                    ("running build, 100 MB log stream in Redis", f"/ui/builds/{live.id}"),
                    ("  its live poll from the start", f"/ui/builds/{live.id}/live?cursor=0"),
                ):
                    times, body = load(client, path, 20)
                    report(f"load {label}", times, f"  size {body / 1024:6.1f} KiB")
        finally:
            svc.stop()
            redis_process.terminate()
            redis_process.wait(timeout=10)


if __name__ == "__main__":
    main()
