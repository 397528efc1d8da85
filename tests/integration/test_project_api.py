"""A project built by a running `wheelwright serve` (its in-process workers, real dockerd, real
uv, the fixture packages on a real local index): `wheelwright project submit --wait` uploads the
folder, prints the table as it changes, and ends with the uv configuration; `GET
/v1/projects/{id}` answers the same state as JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import httpx
import pytest
from enginekit import managed_containers, torch_find_links
from projectkit import PACKAGES, fixture_index, project_env, wheelwright, write_project
from s3_server import free_port
from test_project_build import uv_run
from test_project_build_errors import FAILING

pytestmark = pytest.mark.docker


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    with fixture_index(tmp_path / "index", {**PACKAGES, **FAILING}) as url:
        yield url


@contextmanager
def serving(home: Path, index: str | None = None, **extra: str) -> Iterator[str]:
    """`wheelwright serve` on a free loopback port (file:// git allowed, the fixture `index`
    allowed by host and port), its log in home/../serve.log."""
    env = {**project_env(home, index), "WHEELWRIGHT_SOURCES__ALLOW_FILE_GIT": "true", **extra}
    port = free_port()
    log_path = home.parent / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _healthy(url):
            assert process.poll() is None, log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, "wheelwright serve did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture
def served(tmp_path: Path, index: str) -> Iterator[str]:
    with serving(tmp_path / "home", index) as url:
        yield url


def _client_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WHEELWRIGHT_")}


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_served_project_build_uploads_builds_and_reports(
    tmp_path: Path,
    index: str,
    served: str,
    docker_client: docker.DockerClient,
    cpu_image: str,
) -> None:
    url = served
    project = write_project(tmp_path / "demo", index, dependencies=("wheelwright-pure==1.0",))
    client_env = _client_env()
    done = wheelwright(
        client_env, "project", "submit", str(project), "--server", url, "--wait", "--poll", "0.5"
    )
    assert done.returncode == 0, done.stderr[-4000:] + (tmp_path / "serve.log").read_text()[-4000:]
    # no terminal here: a line per change, as a CI log shows them
    lines = done.stderr.splitlines()
    assert any(line.startswith("wheelwright-pure 1.0  built  ") for line in lines)
    assert lines[-1].startswith("  wheelwright-pure 1.0  built  ")  # the summary, whole
    assert any(line.endswith(": succeeded") for line in lines)
    assert 'wheelwright-pure = { index = "wheelwright" }' in done.stdout
    assert "explicit = true" in done.stdout

    project_build_id = done.stderr.split("project build ", 1)[1].split(" ", 1)[0]
    state = httpx.get(f"{url}/v1/projects/{project_build_id}", timeout=10).json()
    assert state["state"] == "succeeded" and state["error"] is None
    assert state["source"] == {"kind": "upload", "name": "demo.tar.gz"}
    assert [(p["name"], p["state"]) for p in state["packages"]] == [("wheelwright-pure", "built")]
    assert state["index_url"] == f"{url}/simple/{state['environment']}/"
    assert state["uv_config"] == done.stdout
    page = httpx.get(f"{state['index_url']}wheelwright-pure/", timeout=10)
    assert page.status_code == 200 and "wheelwright_pure-1.0-" in page.text
    assert managed_containers(docker_client, tmp_path / "home") == []

    # a repeat is answered from the store: nothing built, the same configuration
    again = wheelwright(client_env, "project", "submit", str(project), "--server", url, "--wait")
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stdout == done.stdout
    assert "cached" in again.stderr


def test_a_project_from_git_with_a_failing_package_exits_non_zero_naming_it(
    tmp_path: Path,
    index: str,
    served: str,
    docker_client: docker.DockerClient,
    cpu_image: str,
) -> None:
    project = write_project(
        tmp_path / "failing",
        index,
        dependencies=("broken==1.0", "needs-broken==1.0", "wheelwright-pure==1.0"),
    )
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(f'{text}needs-broken = ["broken"]\n')
    locked = uv_run(project, "lock")  # static metadata: uv locks these without building
    assert locked.returncode == 0, locked.stderr
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "pyproject.toml", "uv.lock"]):
        subprocess.run([*git, *args], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "project"], check=True)

    url = f"file://{project}"
    done = wheelwright(
        _client_env(), "project", "submit", url, "--ref", "main", "--server", served, "--wait"
    )
    assert done.returncode == 10, done.stderr[-4000:]
    assert "broken:" in done.stderr and "needs-broken:" in done.stderr
    assert "needs broken, which was not built" in done.stderr
    assert done.stdout == ""

    project_build_id = done.stderr.split("project build ", 1)[1].split(" ", 1)[0]
    state = httpx.get(f"{served}/v1/projects/{project_build_id}", timeout=10).json()
    assert state["state"] == "failed"
    assert state["error"] == "not built: broken, needs-broken"
    assert state["failed"] == ["broken", "needs-broken"]
    assert state["source"]["kind"] == "git" and state["source"]["ref"] == "main"
    assert len(state["source"]["commit"]) == 40
    states = {p["name"]: p["state"] for p in state["packages"]}
    assert states == {"broken": "failed", "needs-broken": "not built", "wheelwright-pure": "built"}
    builds = tmp_path / "home" / "store" / "builds"
    assert len(list(builds.rglob("*.json"))) == 1  # the pure package only
    assert managed_containers(docker_client, tmp_path / "home") == []


SECRET = "push-s3cret"


def _push(url: str, repo: Path, commit: str, delivery: str) -> httpx.Response:
    payload = {
        "ref": "refs/heads/main",
        "before": "1" * 40,
        "after": commit,
        "repository": {"full_name": "acme/app", "clone_url": f"file://{repo}"},
        "commits": [{"id": commit, "added": [], "modified": ["pyproject.toml"], "removed": []}],
    }
    raw = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }
    return httpx.post(f"{url}/v1/webhooks/github", content=raw, headers=headers, timeout=30)


def _ended(url: str, project_build_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 900
    while True:
        state: dict[str, object] = httpx.get(f"{url}/v1/projects/{project_build_id}").json()
        if state["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def test_a_pushed_dependency_change_builds_only_what_is_new(
    tmp_path: Path, index: str, docker_client: docker.DockerClient, cpu_image: str
) -> None:
    repo = tmp_path / "app"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]

    def commit(dependencies: tuple[str, ...], message: str) -> str:
        write_project(repo, index, dependencies=dependencies)  # no uv.lock: alpha's metadata
        subprocess.run([*git, "add", "pyproject.toml"], check=True)  # is known after its build
        subprocess.run([*git, "commit", "-q", "-m", message], check=True)
        return subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()

    repo.mkdir()
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    first = commit(("torch==2.13.0", "wheelwright-pure==1.0"), "pure")
    config = tmp_path / "wheelwright.toml"
    config.write_text(
        '[environments.team-cpu]\ntarget = { kind = "cpu", python = "3.11" }\n'
        'runtime = ["torch==2.13.0"]\n'
        f'index = {{ extra_index_urls = ["{index}"], find_links = ["{torch_find_links()}"] }}\n'
        f'[[projects]]\nrepository = "acme/app"\nenvironments = ["team-cpu"]\n'
        'build = "project"\n'
    )
    home = tmp_path / "home"
    extra = {"WHEELWRIGHT_CONFIG": str(config), "WHEELWRIGHT_WEBHOOKS__GITHUB_SECRET": SECRET}
    with serving(home, **extra) as url:
        answer = _push(url, repo, first, "d-1")
        assert answer.status_code == 202, answer.text
        (first_build,) = answer.json()["projects"]
        state = _ended(url, first_build)
        assert state["state"] == "succeeded", (state["error"], state["packages"])
        packages = state["packages"]
        assert isinstance(packages, list)
        assert [(p["name"], p["state"]) for p in packages] == [("wheelwright-pure", "built")]

        second = commit(("torch==2.13.0", "wheelwright-pure==1.0", "alpha==1.0"), "alpha")
        answer = _push(url, repo, second, "d-2")
        assert answer.status_code == 202, answer.text
        (second_build,) = answer.json()["projects"]
        state = _ended(url, second_build)
        assert state["state"] == "succeeded", (state["error"], state["packages"])
        packages = state["packages"]
        assert isinstance(packages, list)
        assert {p["name"]: p["state"] for p in packages} == {
            "alpha": "built",
            "wheelwright-pure": "cached",
        }
        assert state["source"] == {
            "kind": "git",
            "url": f"file://{repo}",
            "ref": "main",
            "commit": second,
        }
    assert managed_containers(docker_client, home) == []
