"""`wheelwright project plan` with the real uv: locks made with building forbidden, stale locks
refused, a package that only its build can describe named as the first thing to build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT = """
[project]
name = "demo"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [{deps}]
"""


def plan(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "project", "plan", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_project_whose_packages_all_have_wheels_has_nothing_to_build(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PROJECT.format(deps='"six==1.16.0", "packaging"'))
    done = plan(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "nothing to build" in done.stderr
    as_json = json.loads(plan(tmp_path, "--json").stdout)
    assert as_json["build"] == [] and sorted(as_json["from_wheels"]) == ["packaging", "six"]
    assert not (tmp_path / "uv.lock").exists()  # the user's folder is never written


def test_a_stale_lock_is_refused_naming_both_files(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PROJECT.format(deps='"six==1.16.0"'))
    subprocess.run(
        [sys.executable, "-m", "uv", "lock", "--directory", str(tmp_path)],
        capture_output=True,
        check=True,
        timeout=600,
    )
    (tmp_path / "pyproject.toml").write_text(PROJECT.format(deps='"six==1.16.0", "packaging"'))
    done = plan(tmp_path)
    assert done.returncode != 0
    assert "uv.lock does not match" in done.stderr and "pyproject.toml" in done.stderr


def test_an_sdist_only_package_that_only_its_build_describes_blocks_the_lock(
    tmp_path: Path,
) -> None:
    # torch-scatter 2.1.2: Metadata-Version 2.1, no wheels on PyPI; uv would have to run its
    # setup.py to learn its dependencies, and locking never builds.
    (tmp_path / "pyproject.toml").write_text(PROJECT.format(deps='"torch-scatter==2.1.2"'))
    done = plan(tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["blocked_by"] == "torch-scatter==2.1.2"
    assert "without building torch-scatter==2.1.2" in plan(tmp_path).stderr
