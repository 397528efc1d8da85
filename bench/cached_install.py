"""The cache's point, in one run: a cold engine build against installing its wheel from our index.

    .venv/bin/python bench/cached_install.py [--rounds 10] [--deps-rounds 2]

1. Cold build: the torch C++ extension `tests/fixtures/torch-ext` against torch 2.13.0 (CPU, from
   the find-links folder of PIP_FIND_LINKS) through the real pipeline (`build_and_publish`, docker
   executor, local store), from a fresh home: empty package cache, nothing stored. The build image
   already exists (building it is a one-time cost per host, not per package).
2. Cache hit: the same request through `build_and_publish` again, answered from the store.
3. The store served by `wheelwright serve` on loopback, then `uv pip install --no-deps torchfix`
   from it into a fresh venv: with a warm uv cache, and with a cold one (a new cache each round).
   Each install is timed alone (the venv is made before the clock starts). For context: the cold
   one again with the venv's interpreter already probed by uv (each install into a new venv
   otherwise pays a Python start-up, whatever the index), the same install where it is already
   satisfied (uv's floor), and full installs: torch from the find-links folder, its own
   dependencies from PyPI, ours through `--index` (PyPI has an unrelated `torchfix` project, and
   uv searches `--extra-index-url` before `--index-url`).

Prints medians, a table, and the ratios (goal: a cached install at least 500x faster than the cold
build). Builds of other users on the same Docker engine slow the cold build down: the load average
is printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker

from bench.index_latency import free_port, server
from service.config import load_settings
from service.index_config import index_url
from service.store import LocalStore
from tests.e2e.test_index_clients import _clean_env
from tests.integration.enginekit import make_sdist, request_for, torch_find_links
from worker.executors.docker import DockerExecutor
from worker.images import ensure_image
from worker.pipeline import build_and_publish

GOAL = 500
CHECK = "import torch, torchfix; print(torchfix.scaled_add(torch.ones(3), torch.arange(3.0), 2.0))"


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds `args` took, and its output."""
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    output = f"$ {' '.join(args)}\n{done.stdout}{done.stderr}"
    if done.returncode != 0:
        raise SystemExit(f"failed:\n{output}")
    return seconds, output


def installs(
    work: Path,
    rounds: int,
    cold_cache: bool,
    install_args: list[str],
    *,
    check: bool = False,
    probe: bool = False,
) -> list[float]:
    """Time `uv pip install` into a fresh venv per round; warm: one untimed install first.

    `probe`: let uv learn the new venv's interpreter first (untimed `uv pip list`), which
    otherwise costs each install into a fresh venv a Python start-up, whatever the index.
    """
    uv = str(Path(sys.executable).with_name("uv"))
    times: list[float] = []
    first = 0 if cold_cache else -1  # round -1 warms the shared cache, untimed
    for number in range(first, rounds):
        home = work / f"r{number}" if cold_cache else work
        venv = work / f"venv{number}"
        env = _clean_env(home)
        run([uv, "venv", "-q", str(venv)], env)
        python = venv / "bin" / "python"
        if probe:
            run([uv, "pip", "list", "--python", str(python)], env)
        seconds, output = run([uv, "pip", "install", "--python", str(python), *install_args], env)
        if number >= 0:
            times.append(seconds)
        if not list((venv / "lib").glob("python3*/site-packages/torchfix-0.3.0.dist-info")):
            raise SystemExit(f"torchfix was not installed:\n{output}")
        if check and number == 0:
            out = subprocess.run(
                [str(python), "-c", CHECK], env=env, capture_output=True, text=True, check=True
            )
            print(f"  installed torchfix runs: {out.stdout.strip()}", flush=True)
    return times


def satisfied(work: Path, rounds: int, install_args: list[str]) -> list[float]:
    """The same install into the first warm venv, where it is already satisfied: uv's own cost."""
    uv = str(Path(sys.executable).with_name("uv"))
    python = work / "venv0" / "bin" / "python"
    args = [uv, "pip", "install", "--python", str(python), *install_args]
    return [run(args, _clean_env(work))[0] for _ in range(rounds)]


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds of the --no-deps installs")
    parser.add_argument("--deps-rounds", type=int, default=2, help="rounds of the full installs")
    args = parser.parse_args()
    find_links = torch_find_links()
    ensure_image(docker.from_env(), "cpu", "3.11")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="wheelwright-bench-") as tmp:
        work = Path(tmp)
        settings = load_settings(
            home=work / "home", executor="docker", sources={"find_links": [find_links]}
        )
        store, executor = LocalStore(settings.store_dir), DockerExecutor(settings)
        sdist = make_sdist("torch-ext", work, "torchfix", "0.3.0")
        request = request_for(
            sdist, runtime=["torch==2.13.0"], index={"find_links": [find_links]}, timeout_s=1800
        )

        print("cold build of torchfix 0.3.0 against torch 2.13.0 (fresh home) ...", flush=True)
        started = time.perf_counter()
        built = build_and_publish(request, settings, store, executor)
        cold_build = time.perf_counter() - started
        assert not built.cached
        stages = {s["name"]: s["seconds"] for s in built.artifact.manifest["stages"]}
        print("  " + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items()), flush=True)

        def hit() -> None:
            assert build_and_publish(request, settings, store, executor).cached

        hits = timed(hit, args.rounds)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        url = index_url(base, built.artifact.environment)
        env = {**os.environ, "WHEELWRIGHT_HOME": str(settings.home)}
        command = [str(Path(sys.executable).with_name("wheelwright")), "serve"]
        no_deps = ["--no-build", "--no-deps", "--index-url", url, "torchfix"]
        # `--index` (searched before PyPI), never `--extra-index-url`: PyPI has a `torchfix` too.
        with_deps = ["--no-build", "--index", f"wheelwright={url}", "--find-links", find_links]
        with_deps.append("torchfix")
        with server([*command, "--port", str(port)], f"{base}/healthz", env):
            print(f"serving {url}", flush=True)
            warm = installs(work / "warm", args.rounds, False, no_deps)
            floor = satisfied(work / "warm", args.rounds, no_deps)
            cold = installs(work / "cold", args.rounds, True, no_deps)
            probed = installs(work / "probed", args.rounds, True, no_deps, probe=True)
            warm_deps = installs(work / "warm-deps", args.deps_rounds, False, with_deps, check=True)
            cold_deps = installs(work / "cold-deps", args.deps_rounds, True, with_deps)
    load_after = os.getloadavg()[0]

    rows = [
        ("cold engine build, all stages", [cold_build]),
        ("build_and_publish, cache hit", hits),
        ("uv pip install --no-deps, warm uv cache", warm),
        ("uv pip install --no-deps, cold uv cache", cold),
        ("(the same, the venv's interpreter already probed by uv)", probed),
        ("uv pip install with torch + deps, warm uv cache", warm_deps),
        ("uv pip install with torch + deps, cold uv cache", cold_deps),
        ("(uv's floor: the --no-deps install, already satisfied)", floor),
    ]
    print(
        f"\nload average (1 min): {load_before:.2f} before, {load_after:.2f} after; "
        f"{os.cpu_count()} CPUs"
    )
    print("| measure | rounds | median s | cold build / this |")
    print("|---|---:|---:|---:|")
    for label, times in rows:
        median = statistics.median(times)
        print(f"| {label} | {len(times)} | {median:.4f} | {cold_build / median:,.0f}x |")
    worst = max(statistics.median(warm), statistics.median(cold))
    verdict = "met" if cold_build / worst >= GOAL else "MISSED"
    print(
        f"\ngoal: a --no-deps install from the cache >= {GOAL}x faster than the cold build: "
        f"{verdict} ({cold_build / worst:,.0f}x for the slower of warm and cold uv cache)"
    )


if __name__ == "__main__":
    main()
