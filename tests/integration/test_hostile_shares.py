"""A service shared by many teams, tried as a hostile user of it would (issue 17), through the real
`wheelwright serve` process, its CLI and real Redis; no build runs (no worker is started), so
whatever is queued is cancelled at the end and nothing is left running.

- a guesser: 300 wrong tokens from one address are answered 429 after the first few, quickly,
  with `Retry-After`, and then even the right token from there; a wrong login form counts alike
- a short token is refused when the service is configured, naming the token, never its value
- one token cannot take every project-build slot, nor queue builds without bound: the other
  token's project build and builds are accepted meanwhile, and so are a webhook's
- a captured webhook delivery sent again under a fresh delivery id is refused
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servicekit import Service

pytestmark = pytest.mark.redis
WHEELWRIGHT = str(Path(sys.executable).with_name("wheelwright"))
SLOW = "slow-team-token-5d1e0c7a9b3f"  # the team that sends slow project builds
FAST = "fast-team-token-8a2c4e6f0b1d"
HOOK_SECRET = "hook-secret-3e9b1c5d7f"


def _six(version: str) -> dict[str, Any]:
    return {"source": {"kind": "requirement", "requirement": f"six=={version}"}}


SIX = _six("1.16.0")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def service(tmp_path: Path, redis_url: str) -> Iterator[Service]:
    tokens = [
        {"name": "slow-team", "token": SLOW, "scopes": ["admin"]},
        {"name": "fast-team", "token": FAST, "scopes": ["build"]},
    ]
    project = {
        "repository": "acme/app",
        "url": "https://git.example.invalid/acme/app.git",  # never cloned: no worker runs
        "environments": ["cpu-plain"],
    }
    svc = Service(
        home=tmp_path / "home",
        redis_url=redis_url,
        extra_env={
            "WHEELWRIGHT_AUTH__TOKENS": json.dumps(tokens),
            "WHEELWRIGHT_ENVIRONMENTS": json.dumps({"cpu-plain": {"target": {"kind": "cpu"}}}),
            "WHEELWRIGHT_PROJECTS": json.dumps([project]),
            "WHEELWRIGHT_WEBHOOKS__GITHUB_SECRET": HOOK_SECRET,
            "WHEELWRIGHT_LIMITS__MAX_PROJECT_BUILDS": "2",
            "WHEELWRIGHT_LIMITS__MAX_BUILDS_PER_REQUESTER": "2",
        },
    )
    svc.start_api()
    try:
        yield svc
        _cancel_everything(svc)
    finally:
        svc.stop()


def _cancel_everything(service: Service) -> None:
    """Cancel what is queued; then every project build must end (none left running). From an
    address of its own: the guessing test holds 127.0.0.1 back."""
    transport = httpx.HTTPTransport(local_address="127.0.0.9")
    with httpx.Client(
        base_url=service.url, headers=auth(SLOW), timeout=30, transport=transport
    ) as http:

        def cancel_builds() -> None:
            listed = http.get("/v1/builds", params={"limit": 100})
            assert listed.status_code == 200, listed.text
            for view in listed.json():
                if view["build"]["state"] in ("queued", "running"):
                    http.post(f"/v1/builds/{view['build']['id']}/cancel")

        cancel_builds()
        deadline = time.monotonic() + 60
        for key in (service.home / "store" / "projects").glob("*.json"):
            project_id = key.stem
            while http.get(f"/v1/projects/{project_id}").json()["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, f"project build {project_id} never ended"
                time.sleep(0.2)
                cancel_builds()  # a project build that waited for a slot queues its own now


def test_300_wrong_tokens_are_answered_429_quickly(service: Service) -> None:
    started = time.monotonic()
    statuses, waits = [], set()
    with httpx.Client(base_url=service.url, timeout=30) as http:
        for n in range(300):
            answer = http.post("/v1/builds", json=SIX, headers=auth(f"guess-{n:04d}-" + "x" * 20))
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                waits.add(int(answer.headers["retry-after"]))
                assert "too many wrong tokens from 127.0.0.1" in answer.json()["detail"]
        assert statuses[:10] == [401] * 10 and statuses[10:] == [429] * 290
        assert time.monotonic() - started < 30
        assert waits and all(1 <= wait <= 60 for wait in waits)
        # held back: the right token from there too (a guesser learns nothing by a 429),
        # while what needs no token still answers
        right = http.get("/v1/builds", headers=auth(SLOW))
        assert right.status_code == 429
        assert http.get("/healthz").status_code == 200
        assert http.get("/simple/").status_code == 200
    cli = subprocess.run(
        [WHEELWRIGHT, "submit", "six==1.16.0", "--server", service.url, "--token", "y" * 30],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=service.env(),
    )
    assert cli.returncode == 30, cli.stderr  # BusyError's exit code
    assert "429 from the server: too many wrong tokens" in cli.stderr

    # another address is not held back; its wrong logins count as wrong tokens do
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    csrf = "c" * 43
    with httpx.Client(base_url=service.url, transport=other, timeout=30) as http:
        http.cookies.set("ww_csrf", csrf)
        assert http.get("/v1/builds", headers=auth(FAST)).status_code == 200
        logins = [
            http.post("/ui/login", data={"token": f"wrong-{n}", "csrf_token": csrf}).status_code
            for n in range(12)
        ]
        assert logins == [401] * 10 + [429] * 2
    assert json.loads(http_get(service, "/v1/builds", SLOW, "127.0.0.3")) == []


def http_get(service: Service, path: str, token: str, address: str) -> str:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=service.url, transport=transport, timeout=30) as http:
        answer = http.get(path, headers=auth(token))
        assert answer.status_code == 200, answer.text
        return answer.text


def test_a_short_token_is_refused_at_configuration_by_name(tmp_path: Path) -> None:
    secret = "short-secret-9"  # 14 characters
    tokens = [{"name": "ci-short", "token": secret, "scopes": ["build"]}]
    refused = subprocess.run(
        [WHEELWRIGHT, "serve", "--port", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={
            **Service(home=tmp_path, redis_url="redis://127.0.0.1:1/0").env(),
            "WHEELWRIGHT_AUTH__TOKENS": json.dumps(tokens),
        },
    )
    assert refused.returncode != 0
    assert "token 'ci-short' is shorter than 24 characters" in refused.stderr, refused.stderr
    assert secret not in refused.stderr + refused.stdout


def _project_archive() -> bytes:
    """A project whose one package has only an sdist: its build is queued, and with no worker
    to run it, the project build holds its slot as a slow one does."""
    pylock = (
        b'lock-version = "1.0"\nrequires-python = ">=3.10"\n\n[[packages]]\nname = "slowpkg"\n'
        b'version = "1.0"\nsdist = { url = "https://files.example.invalid/slowpkg-1.0.tar.gz" }\n'
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("app/pylock.toml")
        info.size = len(pylock)
        tar.addfile(info, io.BytesIO(pylock))
    return buffer.getvalue()


def _start_project(http: httpx.Client, token: str) -> httpx.Response:
    files = {"file": ("app.tar.gz", _project_archive(), "application/gzip")}
    options = {"options": json.dumps({"environment": "cpu-plain"})}
    return http.post("/v1/projects", files=files, data=options, headers=auth(token))


def _waiting_on_its_package(http: httpx.Client, project_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        state: dict[str, Any] = http.get(f"/v1/projects/{project_id}", headers=auth(SLOW)).json()
        if state["state"] == "running" and state["packages"]:
            return state
        assert state["state"] in ("queued", "running"), state
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def test_one_token_takes_its_share_and_the_other_team_still_gets_in(service: Service) -> None:
    with httpx.Client(base_url=service.url, timeout=30) as http:
        first = _start_project(http, SLOW)
        assert first.status_code == 202, first.text
        _waiting_on_its_package(http, first.json()["id"])
        second = _start_project(http, SLOW)  # accepted, but waits: its share is held
        assert second.status_code == 202, second.text
        other = _start_project(http, FAST)  # the other team's project build: it starts
        assert other.status_code == 202, other.text
        _waiting_on_its_package(http, other.json()["id"])
        waiting = http.get(f"/v1/projects/{second.json()['id']}", headers=auth(SLOW)).json()
        assert waiting["state"] == "queued", waiting

        # ordinary builds: two at once per token, its project's own packages not counted
        for version in ("1.15.0", "1.16.0"):
            assert (
                http.post("/v1/builds", json=_six(version), headers=auth(SLOW)).status_code == 202
            )
        third = http.post("/v1/builds", json=_six("1.14.0"), headers=auth(SLOW))
        assert third.status_code == 429, third.text
        assert (
            "2 builds of token 'slow-team' are queued or running already, as many as one "
            "requester may (limits.max_builds_per_requester = 2)"
        ) in third.json()["detail"]
        assert third.headers["retry-after"] == "30"
        again = http.post("/v1/builds", json=SIX, headers=auth(SLOW))  # joins its live build
        assert again.status_code == 202 and again.json()["joined"]
        theirs = http.post("/v1/builds", json=_six("1.14.0"), headers=auth(FAST))
        assert theirs.status_code == 202, theirs.text
        pushed = _github_push(http, "d-1", "1" * 40)  # a webhook is nobody's token
        assert pushed.status_code == 202, pushed.text
        assert len(pushed.json()["builds"]) == 1
        views = http.get("/v1/builds", headers=auth(SLOW), params={"limit": 100}).json()
        assert sorted(v["build"]["requested_by"]["via"] for v in views).count("webhook") == 1


def _github_push(http: httpx.Client, delivery: str, commit: str) -> httpx.Response:
    payload = {
        "ref": "refs/heads/main",
        "after": commit,
        "repository": {"full_name": "acme/app", "clone_url": "https://git.example.invalid/a.git"},
    }
    raw = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(HOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }
    return http.post("/v1/webhooks/github", content=raw, headers=headers)


def test_a_captured_delivery_replayed_under_a_fresh_id_is_refused(service: Service) -> None:
    with httpx.Client(base_url=service.url, timeout=30) as http:
        first = _github_push(http, "delivery-1", "2" * 40)
        assert first.status_code == 202, first.text
        replay = _github_push(http, "delivery-2-fresh", "2" * 40)
        assert replay.status_code == 409, replay.text
        assert (
            "delivery github:delivery-2-fresh has the body of one received before"
            in (replay.json()["detail"])
        )
        assert _github_push(http, "delivery-1", "2" * 40).status_code == 409  # the same id
        assert _github_push(http, "delivery-3", "3" * 40).status_code == 202  # a new push
        views = http.get("/v1/builds", headers=auth(SLOW)).json()
        commits = sorted(v["build"]["request"]["source"]["commit"] for v in views)
        assert commits == ["2" * 40, "3" * 40]
