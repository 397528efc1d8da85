"""The OpenAPI spec, fuzzed with schemathesis against the real app (real Redis behind it):
no request, however odd, gets a 5xx; and tokens are enforced."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from service.api.app import create_app
from service.config import load_settings
from service.dispatch import CeleryDispatcher
from service.jobs import MemoryJobs, RedisJobs

pytestmark = pytest.mark.redis
TOKENS = [
    {"name": "ci", "token": "build-token-1-0123456789abcdef", "scopes": ["build"]},
    {"name": "viewer", "token": "read-token-1-0123456789abcdef", "scopes": ["read"]},
]


def _app(home: Path, redis_url: str, tokens: list[dict[str, object]], anonymous: bool = True):  # type: ignore[no-untyped-def]
    settings = load_settings(
        home=home,
        broker_url=redis_url,
        auth={"tokens": tokens, "anonymous_index": anonymous},
        build_timeout_s=600,
    )
    jobs = RedisJobs.from_url(redis_url)
    return create_app(settings, jobs=jobs, dispatcher=CeleryDispatcher(settings, jobs.queue_length))


class _Swappable:
    """An ASGI app that forwards to `target`: the schema loads at import from a plain app, and
    each test swaps in one backed by the test's own Redis."""

    def __init__(self, target: Any) -> None:
        self.target = target

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


APP = _Swappable(create_app(load_settings(home=Path("/nonexistent")), jobs=MemoryJobs()))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture
def live_app(tmp_path: Path, redis_url: str) -> Iterator[None]:
    plain = APP.target
    APP.target = _app(tmp_path, redis_url, TOKENS)
    yield
    APP.target = plain


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, live_app: None) -> None:
    for headers in ({"Authorization": "Bearer build-token-1-0123456789abcdef"}, {}):
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.method, case.path, response.text)
        if response.status_code >= 400 and case.path.startswith("/v1/"):
            content_type = response.headers.get("content-type") or [""]
            assert content_type[0].startswith("application/json"), content_type
            assert response.json()["detail"], "an error must say what was wrong"
        elif response.status_code >= 400:  # index pages answer pip and uv in plain text
            assert response.text.strip(), "an error must say what was wrong"


def test_tokens_and_scopes(tmp_path: Path, redis_url: str) -> None:
    client = TestClient(_app(tmp_path, redis_url, TOKENS, anonymous=False))
    body = {"source": {"kind": "requirement", "requirement": "six==1.16.0"}}

    missing = client.post("/v1/builds", json=body)
    assert missing.status_code == 401
    assert "needs a token" in missing.json()["detail"]
    assert missing.headers["www-authenticate"].startswith("Basic")
    wrong = client.post("/v1/builds", json=body, headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "the token is not valid")
    read_only = client.post(
        "/v1/builds", json=body, headers={"Authorization": "Bearer read-token-1-0123456789abcdef"}
    )
    assert read_only.status_code == 403
    assert "lacks the 'build' scope" in read_only.json()["detail"]
    queued = client.post(
        "/v1/builds", json=body, headers={"Authorization": "Bearer build-token-1-0123456789abcdef"}
    )
    assert queued.status_code == 202
    build_id = queued.json()["build"]["build"]["id"]
    seen = client.get(
        f"/v1/builds/{build_id}", headers={"Authorization": "Bearer read-token-1-0123456789abcdef"}
    )
    assert seen.json()["build"]["state"] == "queued"

    assert client.get("/simple/").status_code == 401
    basic = base64.b64encode(b"anyone:read-token-1-0123456789abcdef").decode()
    assert client.get("/simple/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_open_service_needs_no_token(tmp_path: Path, redis_url: str) -> None:
    client = TestClient(_app(tmp_path, redis_url, []))
    assert client.get("/v1/builds").status_code == 200
    assert client.get("/simple/").status_code == 200
    assert client.get("/readyz").json() == {
        "ready": True,
        "checks": {"jobs": "ok", "store": "ok", "catalog": "ok"},
    }
    bad = client.post("/v1/builds", json={"source": {"kind": "directory", "path": "/etc"}})
    assert bad.status_code == 422
    assert "only works with the local `wheelwright build`" in bad.json()["detail"]
    assert httpx.codes.is_success(client.get("/metrics").status_code)
