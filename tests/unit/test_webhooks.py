"""Webhook refusals through the real FastAPI app (TestClient), no Docker: a bad signature or
token, an unknown project, an event or ref that builds nothing, a replay, a malformed body.
Each is answered with a clear status and nothing is queued; a good delivery queues its builds.
(tests/integration/test_webhooks.py builds the pushed commit of a real repository.)"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings, load_settings
from service.jobs import MemoryJobs
from service.store import LocalStore
from tests.fakes import RecordingDispatcher

SECRET = "github-s3cret"
TOKEN = "gitlab-t0ken"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CLONE = "https://git.example.invalid/acme/modern-ext.git"


def configured(home: Path, **webhooks: Any) -> Settings:
    return load_settings(
        home=home,
        environments={"cpu-plain": {"target": {"kind": "cpu"}}},
        projects=[
            {
                "repository": "acme/modern-ext",
                "url": CLONE,
                "branches": ["main"],
                "tags": ["v*"],
                "environments": ["cpu-plain"],
            }
        ],
        webhooks=webhooks,
    )


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


def client_for(settings: Settings, store: LocalStore, dispatcher: RecordingDispatcher) -> Any:
    app = create_app(settings, store=store, jobs=MemoryJobs(), dispatcher=dispatcher)
    return TestClient(app)


@pytest.fixture
def client(
    tmp_path: Path, store: LocalStore, dispatcher: RecordingDispatcher
) -> Iterator[TestClient]:
    settings = configured(tmp_path / "home", github_secret=SECRET, gitlab_token=TOKEN)
    with client_for(settings, store, dispatcher) as test_client:
        yield test_client


def github(
    client: TestClient,
    payload: Any,
    *,
    delivery: str = "d-1",
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


def push(ref: str = "refs/heads/main", repo: str = "acme/modern-ext") -> Any:
    return {"ref": ref, "after": COMMIT, "repository": {"full_name": repo, "clone_url": CLONE}}


def nothing_queued(client: TestClient, dispatcher: RecordingDispatcher) -> None:
    assert dispatcher.submitted == []
    assert client.get("/v1/builds").json() == []


def test_a_signed_push_queues_the_pushed_commit(
    client: TestClient, dispatcher: RecordingDispatcher
) -> None:
    answer = github(client, push(), delivery="d-ok")
    assert answer.status_code == 202, answer.text
    (build_id,) = answer.json()["builds"]
    (record,) = dispatcher.submitted
    assert record.id == build_id and record.environment == "cpu-plain"
    assert record.request.source.model_dump()["commit"] == COMMIT
    assert record.requested_by is not None
    assert record.requested_by.delivery == "github:d-ok"
    assert record.requested_by.repository == "acme/modern-ext"


def test_a_bad_signature_is_refused(client: TestClient, dispatcher: RecordingDispatcher) -> None:
    answer = github(client, push(), secret="wrong")
    assert answer.status_code == 401
    assert answer.json()["detail"] == "X-Hub-Signature-256 is missing or does not match the body"
    raw = json.dumps(push()).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    changed = client.post(
        "/v1/webhooks/github",
        content=raw.replace(b"main", b"mainx"),
        headers={
            "X-Hub-Signature-256": signature,
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "d-changed",
        },
    )
    assert changed.status_code == 401, "a body changed after signing"
    assert dispatcher.submitted == []


def test_an_unsigned_delivery_is_refused_before_its_body_is_read(
    client: TestClient, dispatcher: RecordingDispatcher
) -> None:
    answer = client.post(
        "/v1/webhooks/github",
        json=push(),
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "x"},
    )
    assert answer.status_code == 401
    assert answer.json()["detail"] == "X-Hub-Signature-256 is missing"
    nothing_queued(client, dispatcher)


def test_a_forge_without_a_secret_is_refused(
    tmp_path: Path, store: LocalStore, dispatcher: RecordingDispatcher
) -> None:
    with client_for(configured(tmp_path / "home"), store, dispatcher) as client:
        answer = github(client, push())
        assert answer.status_code == 401
        assert "GitHub webhooks are not enabled on this service" in answer.json()["detail"]
        gitlab = client.post("/v1/webhooks/gitlab", json={}, headers={"X-Gitlab-Token": "x"})
        assert gitlab.status_code == 401
        assert "GitLab webhooks are not enabled" in gitlab.json()["detail"]
        nothing_queued(client, dispatcher)


def test_an_unknown_project_is_refused(client: TestClient, dispatcher: RecordingDispatcher) -> None:
    answer = github(client, push(repo="acme/other"))
    assert answer.status_code == 404
    assert answer.json()["detail"] == "no project is configured for repository 'acme/other'"
    nothing_queued(client, dispatcher)


@pytest.mark.parametrize(
    ("event", "payload", "reason"),
    [
        ("issues", {"action": "opened"}, "event 'issues' builds nothing"),
        ("ping", {"zen": "hi"}, "ping: the webhook is set up"),
        ("push", push("refs/heads/feature"), "branch 'feature' is not configured to build"),
        ("push", push("refs/tags/release-1"), "tag 'release-1' is not configured to build"),
        ("push", {**push(), "after": "0" * 40}, "a deleted ref builds nothing"),
        ("release", {"action": "deleted"}, "release 'deleted' builds nothing"),
    ],
)
def test_events_that_build_nothing_are_answered_and_ignored(
    client: TestClient, dispatcher: RecordingDispatcher, event: str, payload: Any, reason: str
) -> None:
    answer = github(client, payload, event=event)
    assert answer.status_code == 200
    assert answer.json() == {"builds": [], "cached": [], "projects": [], "ignored": reason}
    nothing_queued(client, dispatcher)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "the webhook body is not JSON"),
        (json.dumps({"ref": "refs/heads/main"}).encode(), "the webhook body has no after"),
        (json.dumps({**push(), "ref": "refs/pull/1"}).encode(), "is neither a branch nor a tag"),
        (
            json.dumps({"ref": "refs/heads/main", "after": COMMIT, "repository": {}}).encode(),
            "the webhook body has no repository.full_name",
        ),
    ],
)
def test_a_malformed_body_is_refused(
    client: TestClient, dispatcher: RecordingDispatcher, body: bytes, detail: str
) -> None:
    answer = github(client, None, body=body)
    assert answer.status_code == 422
    assert detail in answer.json()["detail"]
    nothing_queued(client, dispatcher)


def test_a_missing_delivery_id_is_refused(
    client: TestClient, dispatcher: RecordingDispatcher
) -> None:
    raw = json.dumps(push()).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    answer = client.post(
        "/v1/webhooks/github",
        content=raw,
        headers={"X-Hub-Signature-256": signature, "X-GitHub-Event": "push"},
    )
    assert answer.status_code == 422
    assert answer.json()["detail"] == "X-GitHub-Delivery is missing"
    nothing_queued(client, dispatcher)


def test_a_replayed_delivery_is_refused(
    client: TestClient, dispatcher: RecordingDispatcher
) -> None:
    assert github(client, push(), delivery="same").status_code == 202
    replay = github(client, push(), delivery="same")
    assert replay.status_code == 409
    assert "delivery 'github:same' was received before" in replay.json()["detail"]
    # the captured delivery again under a fresh id: its signed body is what is recognised
    fresh = github(client, push(), delivery="fresh-id")
    assert fresh.status_code == 409
    assert "github:fresh-id has the body of one received before" in fresh.json()["detail"]
    assert "a replay under a new id" in fresh.json()["detail"]
    assert len(dispatcher.submitted) == 1
    other = {**push(), "after": "b" * 40}  # another push (another body) still builds
    assert github(client, other, delivery="next").status_code == 202
    assert len(dispatcher.submitted) == 2


def test_gitlab_refusals(client: TestClient, dispatcher: RecordingDispatcher) -> None:
    body = {
        "ref": "refs/heads/main",
        "after": COMMIT,
        "checkout_sha": COMMIT,
        "project": {"path_with_namespace": "acme/modern-ext", "git_http_url": CLONE},
    }
    headers = {"X-Gitlab-Event": "Push Hook", "Idempotency-Key": "g-1"}
    wrong = client.post(
        "/v1/webhooks/gitlab", json=body, headers={**headers, "X-Gitlab-Token": "no"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "X-Gitlab-Token is missing or wrong"
    other = client.post(
        "/v1/webhooks/gitlab",
        json=body,
        headers={**headers, "X-Gitlab-Token": TOKEN, "X-Gitlab-Event": "Merge Request Hook"},
    )
    assert other.json()["ignored"] == "event 'Merge Request Hook' builds nothing"
    unknown = {**body, "project": {"path_with_namespace": "acme/x", "git_http_url": CLONE}}
    missing = client.post(
        "/v1/webhooks/gitlab", json=unknown, headers={**headers, "X-Gitlab-Token": TOKEN}
    )
    assert missing.status_code == 404
    nothing_queued(client, dispatcher)
    ok = client.post("/v1/webhooks/gitlab", json=body, headers={**headers, "X-Gitlab-Token": TOKEN})
    assert ok.status_code == 202, ok.text
    replay = client.post(
        "/v1/webhooks/gitlab", json=body, headers={**headers, "X-Gitlab-Token": TOKEN}
    )
    assert replay.status_code == 409
    fresh = client.post(
        "/v1/webhooks/gitlab",
        json=body,
        headers={**headers, "X-Gitlab-Token": TOKEN, "Idempotency-Key": "g-2"},
    )
    assert fresh.status_code == 409 and "a replay under a new id" in fresh.json()["detail"]
    assert len(dispatcher.submitted) == 1
