"""`wheelwright build`: the embedded default, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from enginekit import FIXTURES

pytestmark = pytest.mark.docker
WHEELWRIGHT = str(Path(sys.executable).with_name("wheelwright"))


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WHEELWRIGHT_HOME": str(home)}
    return subprocess.run(
        [WHEELWRIGHT, "build", *args], capture_output=True, text=True, env=env, check=False
    )


def test_build_prints_the_wheel_then_answers_from_the_cache(tmp_path: Path, cpu_image: str) -> None:
    first = _run(tmp_path, str(FIXTURES / "numpy-ext"), "--runtime", "numpy")
    assert first.returncode == 0, first.stderr
    wheel = Path(first.stdout.strip().splitlines()[-1])
    assert wheel.is_file()
    assert wheel.name == "npext-1.0.0-cp311-cp311-linux_x86_64.whl"
    assert wheel.is_relative_to(tmp_path / "store")
    for stage in ("fetch", "runtime", "build_deps", "build", "verify", "publish"):
        assert stage in first.stderr
    assert "built npext-1.0.0" in first.stderr

    second = _run(tmp_path, str(FIXTURES / "numpy-ext"), "--runtime", "numpy")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == str(wheel)
    assert "cached npext-1.0.0" in second.stderr
    assert "runtime" not in second.stderr


def test_failed_build_exits_non_zero_naming_the_stage(tmp_path: Path, cpu_image: str) -> None:
    done = _run(tmp_path, str(FIXTURES / "raising-backend"))
    assert done.returncode == 10
    assert "stage 'build' failed: the build backend failed" in done.stderr
    assert "boom: the backend refuses to build" in done.stderr
    assert "full log:" in done.stderr
    assert done.stdout == ""


def test_bad_input_exits_with_a_clear_message(tmp_path: Path) -> None:
    loose = _run(tmp_path, "six>=1")
    assert loose.returncode == 2
    assert "must pin one exact version" in loose.stderr
    python = _run(tmp_path, "six==1.16.0", "--python", "3.99")
    assert python.returncode == 2
    assert "target.python: Value error, python '3.99' is not a supported version" in python.stderr
    gone = _run(tmp_path, "no-such-project-wheelwright-x==1.0")
    assert gone.returncode == 14
    assert "error in stage fetch: no project named" in gone.stderr
