"""`wheelwright build`: the embedded default, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from enginekit import FIXTURES
from s3_server import free_port

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
    for stage in ("fetch", "runtime", "build_deps", "requires", "build", "verify", "publish"):
        assert stage in first.stderr
    assert "built npext-1.0.0" in first.stderr

    second = _run(tmp_path, str(FIXTURES / "numpy-ext"), "--runtime", "numpy")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == str(wheel)
    assert "cached npext-1.0.0" in second.stderr
    assert "runtime" not in second.stderr

    dist = tmp_path / "dist"
    copied = _run(tmp_path, str(FIXTURES / "numpy-ext"), "--runtime", "numpy", "--out", str(dist))
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.strip().splitlines()[-1] == str(dist / wheel.name)
    assert (dist / wheel.name).read_bytes() == wheel.read_bytes()
    assert [p.name for p in dist.iterdir()] == [wheel.name]  # no partial file left

    labelled = _run(
        tmp_path, str(FIXTURES / "numpy-ext"), "--runtime", "numpy", "--local-label", "auto"
    )
    assert labelled.returncode == 0, labelled.stderr
    assert Path(labelled.stdout.strip()).name == "npext-1.0.0+cpu-cp311-cp311-linux_x86_64.whl"


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


def test_serve_without_a_broker_builds_in_process(tmp_path: Path, cpu_image: str) -> None:
    """One command gives a working service on one machine: `serve` with no Redis at all."""
    port = free_port()
    env = {**os.environ, "WHEELWRIGHT_HOME": str(tmp_path)}
    env.pop("WHEELWRIGHT_BROKER_URL", None)
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [WHEELWRIGHT, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        done = subprocess.run(
            [WHEELWRIGHT, "submit", str(FIXTURES / "modern-ext"), "--server", url, "--wait"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr + (tmp_path / "serve.log").read_text()
        index_url = done.stdout.strip().splitlines()[-1]
        page = httpx.get(f"{index_url}modern-ext/", headers={"Accept": "text/html"})
        assert "modern_ext-2.0.0-cp311-cp311-linux_x86_64.whl" in page.text
        build = httpx.get(f"{url}/v1/builds").json()[0]["build"]
        assert (build["state"], build["project"]) == ("succeeded", "modern-ext")
    finally:
        server.terminate()
        server.wait(timeout=30)
