"""Dashboard pages through the ASGI app (no browser, no services): what each page holds, and the
rules of tokens, sessions and CSRF at the HTTP level."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.api.app import create_app
from service.artifacts import publish
from service.config import ApiToken, AuthSettings, Settings
from service.dispatch import NoDispatcher
from service.jobs import MemoryJobs
from service.models import BuildRecord, Requester, StageTiming, parse_request
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel

READ = "read-secret-0123456789abcdef"
BUILD = "build-secret-9876543210fedcba"
ENV = "cpu-py311-demo0001"


def _app(tmp_path: Path, auth: AuthSettings | None = None) -> tuple[TestClient, MemoryJobs]:
    store, jobs = LocalStore(tmp_path / "store"), MemoryJobs()
    wheel = make_wheel(tmp_path / "w", "demo_pkg", "1.0")
    manifest = {
        "build_id": "b-done",
        "inputs": {"target": {"kind": "cpu", "python": "3.11"}, "runtime": ["torch==2.13.0"]},
        "source": {"kind": "archive", "filename": "demo_pkg-1.0.tar.gz", "sha256": "ab" * 32},
        "image": {"image_id": "sha256:feed"},
        "runtime_freeze": ["torch==2.13.0"],
    }
    artifact = publish(store, environment=ENV, request_key="rk1", wheel=wheel, manifest=manifest)
    request = parse_request({"source": {"kind": "requirement", "requirement": "demo-pkg==1.0"}})
    for build_id, key in (("b-done", "rk1"), ("b-live", "rk2")):
        jobs.create(
            BuildRecord(
                id=build_id,
                request=request,
                request_key=key,
                environment=ENV,
                queue="cpu",
                project="demo-pkg",
                created_at=time.time(),
                requested_by=Requester(via="webhook", delivery="github:d-42", repository="acme/x"),
            )
        )
        jobs.start(build_id)
        jobs.record_stage(build_id, StageTiming(name="fetch", seconds=1.0, network=True, ok=True))
    jobs.append_log("b-done", "\x1b[31mred\x1b[0m <script>alert(1)</script>")
    jobs.finish("b-done", "succeeded", artifact=artifact.summary())
    store.put("logs/builds/b-done.log", b"stored line one\nstored <b>two</b>\n")
    settings = Settings(home=tmp_path, auth=auth or AuthSettings())
    app = create_app(settings, store=store, jobs=jobs, dispatcher=NoDispatcher())
    return TestClient(app, base_url="https://dash.example"), jobs


@pytest.fixture
def guarded(tmp_path: Path) -> tuple[TestClient, MemoryJobs]:
    tokens = (
        ApiToken(name="reader", token=SecretStr(READ), scopes=("read",)),
        ApiToken(name="builder", token=SecretStr(BUILD), scopes=("build",)),
    )
    return _app(tmp_path, AuthSettings(tokens=tokens, anonymous_index=False))


def _csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def _login(client: TestClient, token: str) -> None:
    csrf = _csrf(client, "/ui/login")
    answer = client.post(
        "/ui/login",
        data={"token": token, "next": "/ui/", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def test_pages_show_builds_wheels_and_environments(tmp_path: Path) -> None:
    client, _ = _app(tmp_path)
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
    answer = client.get("/ui/")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    listing = answer.text
    assert "b-done"[:12] in listing and "webhook github:d-42 (acme/x)" in listing
    done = client.get("/ui/builds/b-done").text
    assert "stored line one" in done and "stored &lt;b&gt;two&lt;/b&gt;" in done
    assert "demo_pkg-1.0-py3-none-any.whl" in done and "Cancel" not in done
    live = client.get("/ui/builds/b-live").text
    assert "Cancel this build" in live and 'data-live="/ui/builds/b-live/live"' in live
    polled = client.get("/ui/builds/b-live/live?cursor=0").json()
    assert polled["state"] == "running" and polled["terminal"] is False
    environment = html.unescape(client.get(f"/ui/environments/{ENV}").text)
    assert 'demo-pkg = { index = "wheelwright" }' in environment
    assert f"https://dash.example/simple/{ENV}/" in environment and "torch==2.13.0" in environment
    provenance = client.get(f"/ui/wheels/{ENV}/rk1").text
    assert "sha256:feed" in provenance and "ab" * 32 in provenance and "github:d-42" in provenance
    assert "Builds per day" in client.get("/ui/overview").text
    missing = client.get("/ui/builds/nope")
    assert missing.status_code == 404 and "no build" in missing.text
    assert client.get(f"/ui/environments/{'x' * 5}").status_code == 404


def test_a_failed_build_shows_its_error_and_stage(tmp_path: Path) -> None:
    client, jobs = _app(tmp_path)
    failed = jobs.get("b-live").model_copy(update={"id": "b-fail", "request_key": "rk3"})
    jobs.create(failed)
    jobs.start("b-fail")
    jobs.record_stage("b-fail", StageTiming(name="build", seconds=2.0, network=False, ok=False))
    jobs.finish("b-fail", "failed", error="the build backend failed: boom", error_stage="build")
    page = html.unescape(client.get("/ui/builds/b-fail").text)
    assert "Failed in build:" in page and "the build backend failed: boom" in page
    assert 'class="stage stage-failed net-off" data-stage="build"' in page
    assert "Cancel this build" not in page


def test_a_running_log_is_followed_from_a_cursor(tmp_path: Path) -> None:
    client, jobs = _app(tmp_path)
    jobs.append_log("b-live", "\x1b[1mfirst\x1b[0m")
    page = client.get("/ui/builds/b-live").text
    cursor = re.search(r'data-cursor="([^"]*)"', page)
    assert cursor and "first" in page
    jobs.append_log("b-live", "second <tag>")
    polled = client.get(f"/ui/builds/b-live/live?cursor={cursor.group(1)}").json()
    assert [line["text"] for line in polled["lines"]] == ["second <tag>"]
    assert client.get("/ui/builds/b-live/live?cursor=0;DROP").status_code == 422


def test_no_page_without_a_token(guarded: tuple[TestClient, MemoryJobs]) -> None:
    client, _ = guarded
    for path in ("/ui/", "/ui/builds/b-done", f"/ui/environments/{ENV}", "/ui/overview"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ui/login?next=")
    assert client.get("/ui/", headers={"Authorization": f"Bearer {READ}"}).status_code == 200
    wrong = client.get("/ui/", headers={"Authorization": "Bearer wrong"}, follow_redirects=False)
    assert wrong.status_code == 303
    for forged in ("cmVhZGVy.99999999999.00", "garbage", "cmVhZGVy.1.00"):
        client.cookies.set("ww_session", forged)
        assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_read_token_cannot_cancel_and_no_secret_is_shown(
    guarded: tuple[TestClient, MemoryJobs],
) -> None:
    client, jobs = guarded
    _login(client, READ)
    pages = [client.get(p).text for p in ("/ui/", "/ui/builds/b-live", f"/ui/environments/{ENV}")]
    assert "Cancel this build" not in pages[1]
    assert "UV_INDEX_WHEELWRIGHT_PASSWORD" in pages[2]  # how to pass a token, not a token
    assert not any(READ in page or BUILD in page for page in pages)
    csrf = _csrf(client, "/ui/")
    refused = client.post("/ui/builds/b-live/cancel", data={"csrf_token": csrf})
    assert refused.status_code == 403 and "'build' scope" in html.unescape(refused.text)
    assert jobs.get("b-live").state == "running"


def test_forms_need_this_browsers_csrf_token(guarded: tuple[TestClient, MemoryJobs]) -> None:
    client, jobs = guarded
    no_csrf = client.post("/ui/login", data={"token": BUILD, "next": "/ui/"})
    assert no_csrf.status_code == 403
    _login(client, BUILD)
    csrf = _csrf(client, "/ui/builds/b-live")
    for data in ({}, {"csrf_token": "x" * 43}):
        assert client.post("/ui/builds/b-live/cancel", data=data).status_code == 403
    elsewhere = client.post(
        "/ui/builds/b-live/cancel",
        data={"csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert jobs.get("b-live").state == "running"
    done = client.post(
        "/ui/builds/b-live/cancel", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert done.status_code == 303 and jobs.cancelled("b-live")


def test_login_goes_only_to_a_page_of_this_site(guarded: tuple[TestClient, MemoryJobs]) -> None:
    client, _ = guarded
    csrf = _csrf(client, "/ui/login")
    for target, expected in (("//evil.example/x", "/ui/"), ("/ui/overview", "/ui/overview")):
        answer = client.post(
            "/ui/login",
            data={"token": READ, "next": target, "csrf_token": csrf},
            follow_redirects=False,
        )
        assert answer.headers["location"] == expected
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
        assert READ not in cookie
    wrong = client.post("/ui/login", data={"token": "nope", "csrf_token": csrf})
    assert wrong.status_code == 401 and "not valid" in wrong.text
