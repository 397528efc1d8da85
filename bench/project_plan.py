"""Planning a real locked project of about 200 packages with nothing to build (issue 9).

A common ML stack is locked once with uv (not timed; PyPI metadata), then timed:
  plan        the pure planning step (lock read, tags checked, graph) on that lock
  command     `wheelwright project plan` end to end (uv checks the lock, then the plan)
Goal: the command under 5 s. Run: .venv/bin/python bench/project_plan.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from service.models import Target
from service.project import parse_lock, plan_project, read_project_settings

STACK = [
    "torch==2.13.0",
    "transformers",
    "datasets",
    "accelerate",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "jupyterlab",
    "fastapi",
    "uvicorn",
    "pydantic",
    "sqlalchemy",
    "boto3",
    "pytest",
    "sentencepiece",
    "tensorboard",
]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        deps = ", ".join(f'"{d}"' for d in STACK)
        (folder / "pyproject.toml").write_text(
            f'[project]\nname = "mlstack"\nversion = "0.1"\nrequires-python = ">=3.11"\n'
            f"dependencies = [{deps}]\n"
        )
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "uv", "lock", "--no-build", "--directory", tmp],
            check=True,
            capture_output=True,
        )
        print(f"uv lock (not timed below): {time.monotonic() - started:.1f} s")
        text = (folder / "uv.lock").read_text()
        settings = read_project_settings((folder / "pyproject.toml").read_text())
        target = Target(python="3.11")
        plans = []
        for _ in range(5):
            started = time.monotonic()
            result = plan_project(parse_lock(text), settings, target)
            plans.append(time.monotonic() - started)
        locked = sum(len(v) for v in parse_lock(text).versions.values())
        print(
            f"packages locked: {locked}; installed on {target.label}: "
            f"{len(result.installable) + len(result.nodes)}; to build: {len(result.nodes)}"
        )
        commands = []
        for _ in range(3):
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "service.cli", "project", "plan", tmp, "--json"],
                check=True,
                capture_output=True,
            )
            commands.append(time.monotonic() - started)
        print(f"plan (pure), median of 5: {statistics.median(plans) * 1000:.1f} ms")
        print(f"command (uv lock --check + plan), median of 3: {statistics.median(commands):.2f} s")
        print(f"goal: command under 5 s -> ratio {statistics.median(commands) / 5:.2f} of the goal")


if __name__ == "__main__":
    main()
