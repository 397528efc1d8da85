"""Readiness scheduling of a project build (issue 21): one slow node beside a chain of three
fast ones, on two in-process workers, through the real submit path (memory job state, a local
store, `InProcessDispatcher`); each build's work is a wait of its given length (the scheduler,
not the build, is measured). Printed, from one run:

- makespan / critical-path bound (goal <= 1.1; waves gave (slow + chain) / max(slow, chain));
- the time from a node's last dependency ending (published) to its build starting (goal < 1 s).

Run: .venv/bin/python bench/project_readiness.py [--slow 3.0] [--link 0.8]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from service.config import load_settings
from service.dispatch import InProcessDispatcher
from service.jobs import MemoryJobs
from service.logging import configure_logging
from service.models import Target
from service.project.build import node_request
from service.project.environment import project_environment
from service.project.plan import BuildNode, ProjectPlan, generations
from service.project.run import ProjectRun
from service.store import open_store
from service.submit import submit

PYPROJECT = '[project]\nname = "bench"\nversion = "0"\nrequires-python = ">=3.11"\n'
FILES = "https://files.example/bench"


def node(name: str, *after: str) -> BuildNode:
    runtime = tuple(f"{a}==1.0" for a in after)
    return BuildNode(
        name, "1.0", "sdist only", runtime, after, sdist_url=f"{FILES}/{name}-1.0.tar.gz"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=float, default=3.0)
    parser.add_argument("--link", type=float, default=0.8)
    args = parser.parse_args()
    configure_logging(json_logs=False, quiet=True)
    seconds = {"slow": args.slow, "one": args.link, "two": args.link, "three": args.link}
    nodes = {
        n.name: n for n in (node("slow"), node("one"), node("two", "one"), node("three", "two"))
    }
    plan = ProjectPlan(Target(kind="cpu", python="3.11"), nodes, generations(nodes), ())
    with tempfile.TemporaryDirectory(prefix="bench-readiness-") as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text(PYPROJECT)
        base = load_settings(home=root / "home")
        env = project_environment(
            base,
            root / "pyproject.toml",
            target=plan.target,
            environment=None,
            base_url="http://127.0.0.1:8123",
            abi_pins={},
        )
        settings = env.settings(base)
        jobs = MemoryJobs()
        store = open_store(settings)
        started: dict[str, float] = {}
        ended: dict[str, float] = {}
        lock = threading.Lock()

        def work(build_id: str) -> None:
            record = jobs.start(build_id)
            with lock:
                started[record.project] = time.monotonic()
            time.sleep(seconds[record.project])  # the build's own work, as long as it takes
            with lock:
                ended[record.project] = time.monotonic()
            jobs.finish(build_id, "succeeded", artifact={"filename": f"{record.project}.whl"})

        dispatcher = InProcessDispatcher(work, workers=2)
        try:
            begun = time.monotonic()
            progress = ProjectRun(
                plan,
                lambda n: submit(node_request(n, env), settings, store, jobs, dispatcher),
                jobs,
            ).run()
            makespan = time.monotonic() - begun
        finally:
            dispatcher.shutdown()
    states = {n.name: n.state for n in progress.nodes.values()}
    chain = 3 * args.link
    bound = max(args.slow, chain, (args.slow + chain) / 2)
    waves = args.slow + 2 * args.link  # wave 1 holds slow and one; two and three after it
    latency = {name: started[name] - ended[nodes[name].after[0]] for name in ("two", "three")}
    print(f"states: {states}")
    print(f"the chain's last build ended {ended['slow'] - ended['three']:.2f} s before slow's")
    print(
        f"makespan {makespan:.2f} s, critical-path bound {bound:.2f} s: "
        f"ratio {makespan / bound:.3f} (goal <= 1.1; waves: {waves / bound:.3f})"
    )
    print(
        "last dependency published -> build started: "
        + ", ".join(f"{name} {value * 1000:.0f} ms" for name, value in latency.items())
        + f" (worst {max(latency.values()) * 1000:.0f} ms; goal < 1000 ms)"
    )


if __name__ == "__main__":
    main()
