"""CI webhooks: a signed push builds the pushed commit of a real git repository. The refusals
(signatures, unknown projects, events that build nothing, replays) need no build and are
checked in tests/unit/test_webhooks.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from enginekit import FIXTURES
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import load_settings
from service.dispatch import InProcessDispatcher
from service.jobs import MemoryJobs
from service.store import open_store
from worker.executors import make_executor
from worker.runner import Services, run_job

pytestmark = pytest.mark.docker
SECRET = "github-s3cret"
TOKEN = "gitlab-t0ken"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real repository holding the modern-ext project, on a file URL."""
    path = tmp_path / "modern-ext.git"
    shutil.copytree(FIXTURES / "modern-ext", path)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


@pytest.fixture
def client(
    tmp_path: Path, repo: Path, cpu_image: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    config = tmp_path / "wheelwright.toml"
    config.write_text(
        f"""
[environments.cpu-plain]
target = {{ kind = "cpu" }}

[[projects]]
repository = "acme/modern-ext"
url = "file://{repo}"
branches = ["main"]
tags = ["v*"]
environments = ["cpu-plain"]

[sources]
allow_file_git = true

[webhooks]
github_secret = "{SECRET}"
gitlab_token = "{TOKEN}"
"""
    )
    monkeypatch.setenv("WHEELWRIGHT_CONFIG", str(config))
    settings = load_settings(home=tmp_path / "home")
    svc = Services(settings, open_store(settings), MemoryJobs(), make_executor(settings))
    dispatcher = InProcessDispatcher(lambda build_id: run_job(build_id, svc))
    app = create_app(settings, store=svc.store, jobs=svc.jobs, dispatcher=dispatcher)
    with TestClient(app) as test_client:
        yield test_client


def github_push(
    client: TestClient,
    payload: dict[str, Any],
    *,
    delivery: str,
    event: str = "push",
    secret: str = SECRET,
    body: bytes | None = None,
) -> Any:
    raw = body if body is not None else json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return client.post(
        "/v1/webhooks/github",
        content=raw,
        headers={
            "X-Hub-Signature-256": signature,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "Content-Type": "application/json",
        },
    )


def push_payload(
    commit: str, ref: str = "refs/heads/main", repo: str = "acme/modern-ext"
) -> dict[str, Any]:
    return {
        "ref": ref,
        "after": commit,
        "repository": {"full_name": repo, "clone_url": "https://example.invalid/x.git"},
    }


def wait_succeeded(client: TestClient, build_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        build: dict[str, Any] = client.get(f"/v1/builds/{build_id}").json()["build"]
        if build["state"] in ("succeeded", "failed", "cancelled"):
            assert build["state"] == "succeeded", build
            return build
        time.sleep(0.3)
    raise AssertionError(f"build {build_id} did not finish")


def test_signed_push_builds_the_pushed_commit(client: TestClient, repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    started = time.monotonic()
    answer = github_push(client, push_payload(first), delivery="d-1")
    # answered before the build runs, inside the forge's delivery timeout (GitHub waits 10 s)
    assert time.monotonic() - started < 10.0, "the webhook waited for the build"
    assert answer.status_code == 202, answer.text
    (build_id,) = answer.json()["builds"]
    # the captured delivery sent again under a fresh id: its signed body gives it away
    replay = github_push(client, push_payload(first), delivery="d-1-fresh")
    assert replay.status_code == 409 and "a replay under a new id" in replay.json()["detail"]
    build = wait_succeeded(client, build_id)
    assert build["request"]["source"]["commit"] == first
    assert build["environment"] == "cpu-plain"
    assert build["requested_by"] == {
        "via": "webhook",
        "token": None,
        "delivery": "github:d-1",
        "repository": "acme/modern-ext",
    }
    assert build["artifact"]["filename"].startswith("modern_ext-2.0.0-")
    page = client.get("/simple/cpu-plain/modern-ext/")
    assert build["artifact"]["filename"] in page.text

    (repo / "src" / "modern_ext" / "extra.py").write_text("ANSWER = 42\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "second")
    second = git(repo, "rev-parse", "HEAD")
    answer = github_push(client, push_payload(second), delivery="d-2")
    build = wait_succeeded(client, answer.json()["builds"][0])
    assert build["request"]["source"]["commit"] == second

    git(repo, "tag", "v1.0")
    tag = github_push(client, push_payload(second, "refs/tags/v1.0"), delivery="d-3")
    assert tag.status_code == 202  # the same commit and environment: served from the store
    assert tag.json()["cached"] == [build["artifact"]["filename"]]


def test_gitlab_push_and_tag_hooks(client: TestClient, repo: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    body = {
        "ref": "refs/heads/main",
        "after": commit,
        "checkout_sha": commit,
        "project": {"path_with_namespace": "acme/modern-ext", "git_http_url": "https://x/y.git"},
    }
    headers = {"X-Gitlab-Event": "Push Hook", "Idempotency-Key": "g-1"}
    wrong = client.post(
        "/v1/webhooks/gitlab", json=body, headers={**headers, "X-Gitlab-Token": "no"}
    )
    assert wrong.status_code == 401
    ok = client.post("/v1/webhooks/gitlab", json=body, headers={**headers, "X-Gitlab-Token": TOKEN})
    assert ok.status_code == 202, ok.text
    replay = client.post(
        "/v1/webhooks/gitlab", json=body, headers={**headers, "X-Gitlab-Token": TOKEN}
    )
    assert replay.status_code == 409
    build = wait_succeeded(client, ok.json()["builds"][0])
    assert build["request"]["source"]["commit"] == commit
    tag = {**body, "ref": "refs/tags/v2"}
    tagged = client.post(
        "/v1/webhooks/gitlab",
        json=tag,
        headers={
            "X-Gitlab-Event": "Tag Push Hook",
            "Idempotency-Key": "g-2",
            "X-Gitlab-Token": TOKEN,
        },
    )
    assert tagged.status_code == 202
    assert tagged.json()["cached"] == [build["artifact"]["filename"]]
