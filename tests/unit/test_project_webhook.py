"""A push to a project configured with `build = "project"`: one that changes pyproject.toml or
uv.lock starts a project build of exactly the pushed commit; one that changes neither builds
nothing. Real git on a local repository (file:// allowed), the real app (TestClient), no Docker:
the pushed commit asks for a Python no target has, so the build ends there, naming it."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings, load_settings
from service.jobs import MemoryJobs
from service.project.served import load_state
from service.shares import Share
from service.store import LocalStore
from tests.fakes import RecordingDispatcher

SECRET = "github-s3cret"
PYPROJECT = '[project]\nname = "app"\nversion = "0.1"\nrequires-python = "{python}"\n'


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A repository whose first commit (the pushed one) needs Python 2; HEAD is fine."""
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "app" / "pyproject.toml").write_text(PYPROJECT.format(python="<3"))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "old python")
    pushed = git(repo, "rev-parse", "HEAD")
    (repo / "app" / "pyproject.toml").write_text(PYPROJECT.format(python=">=3.10"))
    git(repo, "commit", "-q", "-am", "new python")
    return repo, pushed


def configured(
    home: Path, repo: Path, environments: tuple[str, ...] = ("cpu-plain",), **overrides: Any
) -> Settings:
    return load_settings(
        home=home,
        environments={name: {"target": {"kind": "cpu"}} for name in environments},
        sources={"allow_file_git": True},
        projects=[
            {
                "repository": "acme/app",
                "url": f"file://{repo}",
                "subdirectory": "app",
                "environments": list(environments),
                "build": "project",
            }
        ],
        webhooks={"github_secret": SECRET},
        **overrides,
    )


def push(client: TestClient, commit: str, changed: list[str], delivery: str) -> Any:
    payload = {
        "ref": "refs/heads/main",
        "before": "1" * 40,
        "after": commit,
        "repository": {"full_name": "acme/app", "clone_url": "https://git.example.invalid/a.git"},
        "commits": [{"id": commit, "added": [], "modified": changed, "removed": []}],
    }
    raw = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }
    return client.post("/v1/webhooks/github", content=raw, headers=headers)


def test_a_push_changing_the_lock_builds_the_pushed_commit_as_a_project(
    tmp_path: Path, store: LocalStore, repo: tuple[Path, str]
) -> None:
    folder, pushed = repo
    dispatcher = RecordingDispatcher()
    settings = configured(tmp_path / "home", folder)
    client = TestClient(create_app(settings, store=store, jobs=MemoryJobs(), dispatcher=dispatcher))

    answer = push(client, pushed, ["app/uv.lock", "README.md"], "d-1")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["builds"] == [] and body["cached"] == []
    (project_build_id,) = body["projects"]
    deadline = time.monotonic() + 30
    while (state := load_state(store, project_build_id))["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert state["source"] == {
        "kind": "git",
        "url": f"file://{folder}",
        "ref": "main",
        "commit": pushed,
    }
    assert state["environment"] == "cpu-plain"
    assert state["state"] == "failed"
    # the pushed commit's file, not HEAD's, named as in the repository
    assert str(state["error"]).startswith("app/pyproject.toml requires Python <3")
    assert str(tmp_path) not in str(state["error"])
    assert dispatcher.submitted == []
    assert list((tmp_path / "home").glob("project-*")) == []


def test_a_push_changing_neither_file_builds_nothing(
    tmp_path: Path, store: LocalStore, repo: tuple[Path, str]
) -> None:
    folder, pushed = repo
    settings = configured(tmp_path / "home", folder)
    client = TestClient(create_app(settings, store=store, jobs=MemoryJobs()))
    answer = push(client, pushed, ["README.md", "uv.lock", "other/pyproject.toml"], "d-2")
    assert answer.status_code == 200
    assert answer.json()["projects"] == []
    assert "neither pyproject.toml nor uv.lock" in answer.json()["ignored"]
    assert list(store.list("projects/")) == []


def test_a_busy_service_keeps_a_push_waiting_for_a_slot_and_runs_it_when_one_frees(
    tmp_path: Path, store: LocalStore, repo: tuple[Path, str]
) -> None:
    """GitHub does not send a refused delivery again by itself: a push that finds every slot
    taken (here by a token's build) is accepted, its builds wait in line, then run."""
    folder, pushed = repo
    two = ("cpu-plain", "cpu-other")
    busy = configured(tmp_path / "home", folder, two, limits={"max_project_builds": 1})
    client = TestClient(create_app(busy, store=store, jobs=MemoryJobs()))
    slots = client.app.state.project_slots  # type: ignore[attr-defined]
    other = Share("token:other", "token 'other'")
    slots.take(other)  # another token's project build holds the only slot
    answer = push(client, pushed, ["app/pyproject.toml"], "d-busy")
    assert answer.status_code == 202, answer.text
    ids = answer.json()["projects"]
    assert len(ids) == 2 and slots.waiting == 2
    assert [load_state(store, i)["state"] for i in ids] == ["queued", "queued"]
    replay = push(client, pushed, ["app/pyproject.toml"], "d-busy")  # accepted once only
    assert replay.status_code == 409 and "received before" in replay.json()["detail"]

    slots.give_back(other)
    deadline = time.monotonic() + 30
    while any(load_state(store, i)["state"] != "failed" for i in ids):
        assert time.monotonic() < deadline, "the waiting builds never ran"
        time.sleep(0.05)
    assert all("requires Python <3" in str(load_state(store, i)["error"]) for i in ids)
    while (slots.waiting, slots.free) != (0, 1):  # the slot goes back once the end is saved
        assert time.monotonic() < deadline, (slots.waiting, slots.free)
        time.sleep(0.05)
    assert list((tmp_path / "home").glob("project-*")) == []


def test_a_push_past_its_repositorys_line_is_refused_and_not_counted_as_received(
    tmp_path: Path, store: LocalStore, repo: tuple[Path, str]
) -> None:
    folder, pushed = repo
    two = ("cpu-plain", "cpu-other")
    limits = {"max_project_builds": 1, "max_waiting_project_builds": 1}
    settings = configured(tmp_path / "home", folder, two, limits=limits)
    client = TestClient(create_app(settings, store=store, jobs=MemoryJobs()))
    answer = push(client, pushed, ["app/pyproject.toml"], "d-full")
    assert answer.status_code == 429, answer.text
    assert answer.headers["retry-after"] == "30"
    assert (
        "0 project builds of repository 'acme/app' wait for a slot already; 2 more would pass "
        "the limit of 1 (limits.max_waiting_project_builds)"
    ) in answer.json()["detail"]
    assert list(store.list("projects/")) == []
    assert list((tmp_path / "home").glob("project-*")) == []
