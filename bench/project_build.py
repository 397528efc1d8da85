"""Project builds (issue 9): makespan with 2 in-process workers against 1, and a cached repeat.

The graph: a locked project with two sdist-only packages (fixtures project-pure and
project-needs-broken, static metadata, so uv locks them without building) in one wave, built in
the CPU image with torch 2.13.0 in their runtime. Each worker count builds into a fresh home (a
cold store), same images, same fixture index; the ratio is makespan(2) / makespan(1) from one
run. Then `project build` again on the 2-worker home: everything answered from the store.
Goal for the repeat: under 1 s. Run: .venv/bin/python bench/project_build.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from projectkit import fixture_index, project_env, wheelwright, write_project  # noqa: E402
from s3_server import free_port  # noqa: E402

GRAPH = {
    "project-pure": ("wheelwright_pure", "1.0"),
    "project-needs-broken": ("needs_broken", "1.0"),
}


def timed_build(
    home: Path, project: Path, url: str, workers: int, index: str
) -> tuple[float, float, dict[str, str]]:
    """Wall time of the whole command, the time it reports itself (after its imports), states."""
    started = time.monotonic()
    done = wheelwright(
        project_env(home, index),
        "project",
        "build",
        str(project),
        "--url",
        url,
        "--workers",
        str(workers),
        "--json",
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"project build failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout)
    states = {p["name"]: p["state"] for p in answer["packages"]}
    return seconds, float(answer["seconds"]), states


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-project-") as tmp:
        root = Path(tmp)
        with fixture_index(root / "index", GRAPH) as index:
            project = write_project(
                root / "project", index, dependencies=("wheelwright-pure==1.0", "needs-broken==1.0")
            )
            subprocess.run(
                [sys.executable, "-m", "uv", "lock", "--directory", str(project)],
                check=True,
                capture_output=True,
            )
            url = f"http://127.0.0.1:{free_port()}"
            one, _, states = timed_build(root / "home1", project, url, 1, index)
            print(f"1 worker:  {one:6.1f} s  {states}")
            two, _, states = timed_build(root / "home2", project, url, 2, index)
            print(f"2 workers: {two:6.1f} s  {states}")
            print(f"makespan ratio (2 workers / 1 worker): {two / one:.2f}")
            walls, owns = [], []
            for _ in range(3):
                wall, own, states = timed_build(root / "home2", project, url, 2, index)
                walls.append(wall)
                owns.append(own)
            print(
                f"repeat, all cached ({states}): best of 3: {min(owns):.2f} s in the command, "
                f"{min(walls):.2f} s wall with the interpreter and imports"
            )


if __name__ == "__main__":
    main()
