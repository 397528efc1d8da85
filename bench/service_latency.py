"""The build service under load, in one run: a real Redis, `wheelwright serve` and Celery workers.

Prints: cache-hit `POST /v1/builds` latency (goal p50 < 20 ms), submit-to-start latency with an
idle worker (goal < 1 s), and builds per minute with 1 and 2 workers on a small fixture.

    .venv/bin/python bench/service_latency.py [--hits 200] [--builds 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from redis_server import RedisServer  # noqa: E402
from s3_server import free_port  # noqa: E402
from servicekit import Service, sleepy_sdist  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_all(svc: Service, ids: list[str]) -> None:
    for build_id in ids:
        svc.wait_for(build_id, lambda b: b["state"] == "succeeded", timeout_s=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=200)
    parser.add_argument("--builds", type=int, default=6)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp / "redis", free_port())
        (tmp / "redis").mkdir()
        redis.start()
        svc = Service(home=tmp / "home", redis_url=redis.url, build_timeout_s=600)
        try:
            svc.start_api()
            svc.start_worker("cpu")
            print("warming: one build to cache ...", flush=True)
            warm = sleepy_sdist(tmp / "warm", 0, "0.1")
            first = svc.upload(warm)["build"]["build"]["id"]
            wait_all(svc, [first])

            hits: list[float] = []
            with warm.open("rb") as fh, httpx.Client(base_url=svc.url) as client:
                body = fh.read()
                for _ in range(args.hits):
                    started = time.perf_counter()
                    answer = client.post("/v1/builds", files={"file": (warm.name, body)}, data={})
                    hits.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200, answer.text
                # the same with a JSON request whose key is stored (no upload to hash)
                stored = svc.build(first)["request"]
                json_hits: list[float] = []
                for _ in range(args.hits):
                    started = time.perf_counter()
                    answer = client.post("/v1/builds", json=stored)
                    json_hits.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200, answer.text

            to_start: list[float] = []
            for i in range(5):
                sdist = sleepy_sdist(tmp / f"start{i}", 0, f"1.{i}")
                posted = time.time()
                build_id = svc.upload(sdist)["build"]["build"]["id"]
                build = svc.wait_for(build_id, lambda b: b["state"] == "succeeded")
                to_start.append(build["started_at"] - posted)

            rates: dict[int, float] = {}
            for workers in (1, 2):
                while len(svc.workers) < workers:
                    svc.start_worker("cpu")
                sdists = [
                    sleepy_sdist(tmp / f"w{workers}-{i}", 0, f"{workers + 1}.{i}")
                    for i in range(args.builds)
                ]
                started = time.monotonic()
                ids = [svc.upload(s)["build"]["build"]["id"] for s in sdists]
                wait_all(svc, ids)
                rates[workers] = args.builds / ((time.monotonic() - started) / 60)
        finally:
            svc.stop()
            redis.stop()

    print()
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| cache-hit POST (upload, sha256 + lookup) p50 / p95 | "
        f"{percentile(hits, 0.5):.1f} / {percentile(hits, 0.95):.1f} ms |"
    )
    print(
        f"| cache-hit POST (JSON) p50 / p95 (goal p50 < 20 ms) | "
        f"{percentile(json_hits, 0.5):.1f} / {percentile(json_hits, 0.95):.1f} ms |"
    )
    print(
        f"| submit-to-start, idle worker, median (goal < 1 s) | "
        f"{statistics.median(to_start):.2f} s |"
    )
    for workers, rate in rates.items():
        print(
            f"| builds per minute, {workers} worker(s), {args.builds} small builds | {rate:.1f} |"
        )
    print(f"| scaling 2 workers / 1 worker | {rates[2] / rates[1]:.2f}x |")


if __name__ == "__main__":
    main()
