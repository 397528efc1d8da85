"""`wheelwright project build` on bad input: each a clear error, nothing half-published, no
container left. Real uv, a real local index; docker for the failed-package case."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from enginekit import managed_containers
from projectkit import fixture_index, project_env, wheelwright, write_project
from s3_server import free_port
from test_project_build import uv_run

FAILING = {
    "project-broken": ("broken", "1.0"),
    "project-needs-broken": ("needs_broken", "1.0"),
    "project-pure": ("wheelwright_pure", "1.0"),
}


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    with fixture_index(
        tmp_path / "index",
        {**FAILING, "project-alpha": ("alpha", "1.0"), "project-beta": ("beta", "1.0")},
    ) as url:
        yield url


def build(home: Path, index: str, project: Path, *args: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{free_port()}"
    env = project_env(home, index)
    done = wheelwright(env, "project", "build", str(project), "--url", url, *args)
    return done.returncode, done.stdout, done.stderr


def published(home: Path) -> list[str]:
    builds = home / "store" / "builds"
    return sorted(p.name for p in builds.rglob("*.json")) if builds.exists() else []


def test_bad_projects_are_refused_before_anything_builds(tmp_path: Path, index: str) -> None:
    home = tmp_path / "home"
    wheels_only = write_project(tmp_path / "wheels", index, dependencies=("six==1.16.0",))
    code, _, err = build(home, index, wheels_only)
    assert code == 0, err
    assert "nothing to build: all 1 packages the project installs on cpu-py3.11" in err

    newer = write_project(tmp_path / "py312", index, requires_python=">=3.12")
    code, _, err = build(home, index, newer)
    assert code == 2
    assert "requires Python >=3.12, but the target cpu-py3.11 has Python 3.11" in err

    stale = write_project(tmp_path / "stale", index, dependencies=("six==1.16.0",))
    assert uv_run(stale, "lock").returncode == 0
    write_project(stale, index, dependencies=("six==1.16.0", "packaging"))
    code, _, err = build(home, index, stale)
    assert code == 2
    assert "uv.lock does not match" in err

    cycle = write_project(tmp_path / "cycle", index, dependencies=("beta==1.0",))
    text = (cycle / "pyproject.toml").read_text()
    text = text.replace(
        'alpha = [{ requirement = "torch", match-runtime = true }]', 'alpha = ["beta"]'
    )
    (cycle / "pyproject.toml").write_text(text)
    code, _, err = build(home, index, cycle)
    assert code == 2
    assert "the build graph has a cycle: beta -> alpha -> beta" in " ".join(err.split())
    assert published(home) == []  # nothing was built, nothing published


@pytest.mark.docker
def test_a_failed_package_fails_its_dependents_and_the_others_publish(
    tmp_path: Path, index: str, docker_client: docker.DockerClient, cpu_image: str
) -> None:
    home = tmp_path / "home"
    project = write_project(
        tmp_path / "failing",
        index,
        dependencies=("broken==1.0", "needs-broken==1.0", "wheelwright-pure==1.0"),
    )
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(f'{text}needs-broken = ["broken"]\n')
    locked = uv_run(project, "lock")  # static metadata: uv locks these without building
    assert locked.returncode == 0, locked.stderr
    code, out, err = build(home, index, project, "--json")
    assert code == 10, err[-3000:]
    packages = {p["name"]: p for p in json.loads(out)["packages"]}
    assert packages["broken"]["state"] == "failed"
    assert "cannot be built (on purpose)" in str(packages["broken"]["error"]) or packages["broken"][
        "error"
    ].startswith("failed in stage")
    assert packages["needs-broken"]["state"] == "not built"
    assert "needs broken, which was not built" in packages["needs-broken"]["error"]
    assert packages["wheelwright-pure"]["state"] == "built"
    assert json.loads(out)["failed"] == ["broken", "needs-broken"]
    assert len(published(home)) == 1  # the pure package only; nothing of the failed ones
    assert managed_containers(docker_client, home) == []
