"""Request bodies are bounded before they are read, a token is checked before the body, and a
GitHub webhook without a signature is refused unread (the real app, in process)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import load_settings
from service.jobs import MemoryJobs

TOKEN = "build-token-123-0123456789abcdef"
LIMIT = 64 * 1024


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        home=tmp_path,
        auth={"tokens": [{"name": "ci", "token": TOKEN, "scopes": ["build"]}]},
        limits={"max_body_bytes": LIMIT, "max_upload_bytes": 2 * LIMIT},
        webhooks={"github_secret": "s3cret-hook"},
    )
    with TestClient(create_app(settings, jobs=MemoryJobs())) as test_client:
        yield test_client


class CountingBody(httpx.SyncByteStream):
    """A body that counts how much of it the server read."""

    def __init__(self, size: int, chunk: int = 8192) -> None:
        self.size, self.chunk, self.sent = size, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < self.size:
            piece = b" " * min(self.chunk, self.size - self.sent)
            self.sent += len(piece)
            yield piece


def test_no_token_is_refused_before_the_body_is_read(client: TestClient) -> None:
    body = CountingBody(10 * LIMIT)
    answer = client.post("/v1/builds", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 401
    assert "needs a token" in answer.json()["detail"]
    assert body.sent <= 8192  # at most the first chunk was pulled by the transport
    wrong = client.post("/v1/builds", content=b"{}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"]


def test_a_body_over_the_limit_is_refused(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    declared = client.post("/v1/builds", content=b" " * (2 * LIMIT), headers=auth)
    assert declared.status_code == 413
    assert f"limit of {LIMIT} bytes" in declared.json()["detail"]
    streamed = CountingBody(4 * LIMIT)  # chunked: no Content-Length to trust
    answer = client.post("/v1/builds", content=streamed, headers=auth)
    assert answer.status_code == 413
    assert f"limit of {LIMIT} bytes" in answer.json()["detail"]


def test_an_upload_over_its_limit_is_refused(client: TestClient) -> None:
    files = {"file": ("p-1.tar.gz", io.BytesIO(b"\0" * (3 * LIMIT)), "application/gzip")}
    answer = client.post("/v1/builds", files=files, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 413
    assert f"limit of {2 * LIMIT} bytes" in answer.json()["detail"]


def test_a_corrupt_upload_is_refused_and_not_stored(client: TestClient, tmp_path: Path) -> None:
    files = {"file": ("p-1.zip", io.BytesIO(b"PK\x03\x04" + b"\xff" * 500), "application/zip")}
    answer = client.post(
        "/v1/builds",
        files=files,
        data={"options": json.dumps({})},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 422
    assert "p-1.zip" in answer.json()["detail"]
    assert not list((tmp_path / "store").rglob("p-1.zip"))


def test_webhook_without_signature_is_refused_unread(client: TestClient) -> None:
    body = CountingBody(10 * LIMIT)
    answer = client.post("/v1/webhooks/github", content=body)
    assert answer.status_code == 401
    assert "X-Hub-Signature-256 is missing" in answer.json()["detail"]
    assert body.sent <= 8192


def test_small_requests_still_work(client: TestClient) -> None:
    bad = client.post(
        "/v1/builds",
        json={"source": {"kind": "git", "url": "--upload-pack=touch /tmp/x"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert bad.status_code == 422
    assert "starts with '-'" in json.dumps(bad.json()) or "whitespace" in json.dumps(bad.json())
