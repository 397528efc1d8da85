"""Failed tokens and logins counted per client address (the real app, TestClient): past
`auth.max_failures` in the window, 429 with Retry-After for whatever the address presents."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.auth_limits import FailureWindow
from service.config import load_settings
from service.jobs import MemoryJobs

TOKEN = "reader-token-0123456789abcdef"


def test_a_window_counts_failures_per_address_and_forgets_them() -> None:
    window = FailureWindow(2, 0.2)
    assert window.wait_s("a") is None
    window.failed("a")
    window.failed("a")
    assert window.wait_s("a") == 1  # rounded up to a whole second
    assert window.wait_s("b") is None  # another address is not held back
    window.window_s = 0.0  # the window passed
    assert window.wait_s("a") is None


def test_wrong_tokens_then_the_right_one_are_answered_429(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path,
        auth={
            "tokens": [{"name": "reader", "token": TOKEN, "scopes": ["read"]}],
            "anonymous_index": False,
            "max_failures": 3,
        },
    )
    client = TestClient(create_app(settings, jobs=MemoryJobs()))
    wrong = {"Authorization": "Bearer " + "w" * 30}
    assert [client.get("/v1/builds", headers=wrong).status_code for _ in range(3)] == [401] * 3
    held = client.get("/v1/builds", headers={"Authorization": f"Bearer {TOKEN}"})
    assert held.status_code == 429 and held.headers["retry-after"] in {str(n) for n in range(1, 61)}
    assert "too many wrong tokens from testclient: 3 within 60 s" in held.json()["detail"]
    assert client.get("/healthz").status_code == 200  # no token presented: not held back
    login = client.post("/ui/login", data={"token": "x", "csrf_token": "y"})
    assert login.status_code == 429


def test_wrong_webhook_tokens_count_on_a_service_without_api_tokens(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path, webhooks={"gitlab_token": "hook-token"}, auth={"max_failures": 2}
    )
    client = TestClient(create_app(settings, jobs=MemoryJobs()))
    headers = {"X-Gitlab-Token": "guess", "X-Gitlab-Event": "Push Hook"}
    answers = [client.post("/v1/webhooks/gitlab", json={}, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 429]
    # an API token is not looked at on an open service: never a wrong one, never held back
    open_call = {"Authorization": "Bearer anything"}
    assert all(client.get("/v1/builds", headers=open_call).status_code == 200 for _ in range(5))
