"""`wheelwright project build` end to end: real uv, real dockerd, a real local package index.

alpha (Metadata-Version 2.1, its setup.py imports torch) and beta (its setup.py imports alpha
and torch, declared only in the project's [tool.uv.extra-build-dependencies]) are built in order
by one command; then a fresh uv locks and syncs the project with building forbidden, against
our index and the fixture index, and beta runs alpha's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import uv
from enginekit import managed_containers, torch_find_links
from projectkit import fixture_index, project_env, wheelwright, write_project
from s3_server import free_port

pytestmark = pytest.mark.docker


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    with fixture_index(tmp_path / "index") as url:
        yield url


def uv_run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """uv as a user on a fresh machine runs it: no user config, its own empty cache."""
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(folder),
        "UV_CACHE_DIR": str(folder / ".uv-cache"),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    return subprocess.run(
        [uv.find_uv_bin(), *args, "--directory", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WHEELWRIGHT_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("wheelwright serve did not start")


def test_one_command_builds_alpha_then_beta_and_uv_installs_them_without_building(
    tmp_path: Path, index: str, docker_client: docker.DockerClient, cpu_image: str
) -> None:
    home = tmp_path / "home"
    env = project_env(home, index)
    url = f"http://127.0.0.1:{free_port()}"
    project = write_project(tmp_path / "demo", index)
    comment = "# a project whose dependencies need building"
    assert comment in (project / "pyproject.toml").read_text()

    done = wheelwright(env, "project", "build", str(project), "--url", url, "--write", "--json")
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    packages = {p["name"]: p for p in result["packages"]}
    assert {n: p["state"] for n, p in packages.items()} == {
        "alpha": "built",
        "beta": "built",
        "wheelwright-pure": "built",
    }
    assert packages["alpha"]["wave"] < packages["beta"]["wave"]  # beta's build installs alpha
    environment = result["environment"]
    assert result["index_url"] == f"{url}/simple/{environment}/"
    written = (project / "pyproject.toml").read_text()
    assert comment in written  # the user's comments are kept
    assert 'beta = {index = "wheelwright"}' in written and result["index_url"] in written
    assert managed_containers(docker_client, home) == []

    server = serve(home, int(url.rsplit(":", 1)[1]))
    try:
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        (fresh / "pyproject.toml").write_text(written)
        locked = uv_run(fresh, "lock", "--no-build")
        assert locked.returncode == 0, locked.stderr
        synced = uv_run(fresh, "sync", "--no-build")
        assert synced.returncode == 0, synced.stderr
        ran = subprocess.run(
            [str(fresh / ".venv/bin/python"), "-c", "import beta; print(beta.hello())"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ran.stdout.strip() == "alpha (built against torch 2.13.0) greets beta", ran.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)

    # a repeat: answered from the store, nothing built
    started = time.monotonic()
    again = wheelwright(env, "project", "build", str(project), "--url", url, "--json")
    took = time.monotonic() - started
    assert again.returncode == 0, again.stderr[-4000:]
    states = {p["name"]: p["state"] for p in json.loads(again.stdout)["packages"]}
    assert set(states.values()) == {"cached"} and set(states) == set(packages)
    assert took < 30

    # the same project for another environment: its own pages, never mixed with the first
    config = tmp_path / "wheelwright.toml"
    config.write_text(
        '[environments.team-cpu]\ntarget = { kind = "cpu", python = "3.11" }\n'
        'runtime = ["torch==2.13.0"]\n'
        f'index = {{ extra_index_urls = ["{index}"], find_links = ["{torch_find_links()}"] }}\n'
    )
    other = write_project(tmp_path / "demo2", index)
    named = {**env, "WHEELWRIGHT_CONFIG": str(config)}
    second = wheelwright(
        named, "project", "build", str(other), "--url", url, "--environment", "team-cpu", "--json"
    )
    assert second.returncode == 0, second.stderr[-4000:]
    assert json.loads(second.stdout)["environment"] == "team-cpu"
    builds = home / "store" / "builds"
    assert sorted(p.name for p in builds.iterdir()) == sorted([environment, "team-cpu"])
    assert len(list((builds / "team-cpu").iterdir())) == 3
    assert len(list((builds / environment).iterdir())) == 3
    assert managed_containers(docker_client, home) == []
