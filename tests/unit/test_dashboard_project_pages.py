"""The project build pages through the ASGI app (no browser, no services): the list, one project
build (packages, failures, uv configuration), its live JSON, 404s, hostile text, and the same
`read` scope as `GET /v1/projects/{id}`. States are saved by `ServedProjectBuild.save()`."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.api.app import create_app
from service.config import ApiToken, AuthSettings, load_settings
from service.dashboard import projects
from service.dispatch import NoDispatcher
from service.jobs import MemoryJobs
from service.store import LocalStore
from tests.projectstates import INDEX_URL, SavedProjectBuild, node, parts_of

READ = "read-secret-0123456789abcdef"
NONE = "none-secret-0123456789abcdef"
UV_CONFIG = '[[tool.uv.index]]\nname = "wheelwright"\nurl = "x"\nexplicit = true\n'
HOSTILE = "<script>alert(1)</script>"


def _client(tmp_path: Path, auth: AuthSettings | None = None) -> tuple[TestClient, LocalStore]:
    store = LocalStore(tmp_path / "store")
    settings = load_settings(
        home=tmp_path / "home",
        environments={"cpu-plain": {"target": {"kind": "cpu"}}},
        auth=auth or AuthSettings(),
    )
    app = create_app(settings, store=store, jobs=MemoryJobs(), dispatcher=NoDispatcher())
    return TestClient(app, base_url="https://dash.example"), store


def _failed(tmp_path: Path, store: LocalStore) -> SavedProjectBuild:
    packages = [
        node("alpha", "1.0", 1, "built", build_id="0123abcd0123abcd", seconds=12.5),
        node("beta", "2.0", 2, "failed", build_id="fedc0123fedc0123", seconds=3, error=HOSTILE),
        node("gamma", "0.3", 3, "not built", note="needs beta, which was not built"),
    ]
    saved = SavedProjectBuild(
        parts_of(load_settings(home=tmp_path / "home"), store),
        tmp_path / "work",
        {"kind": "upload", "name": f"{HOSTILE}.tar.gz"},
        state="failed",
        input="pyproject.toml",
        index_url=INDEX_URL,
        failed=["beta", "gamma"],
        error="not built: beta, gamma",
        uv_config=UV_CONFIG,
        finished_at=time.time(),
    )
    saved.update(packages=packages)
    return saved


def _running(tmp_path: Path, store: LocalStore) -> SavedProjectBuild:
    source = {"kind": "git", "url": "https://git.example/acme/app.git", "ref": "main"}
    saved = SavedProjectBuild(
        parts_of(load_settings(home=tmp_path / "home"), store),
        tmp_path / "work2",
        source | {"commit": "c0ffee" * 6 + "abcd"},
        state="running",
        input="pyproject.toml",
        index_url=INDEX_URL,
    )
    saved.update(packages=[node("alpha", "1.0", 1, "running", stage="build", seconds=4)])
    return saved


def test_the_list_shows_each_project_build_newest_first(tmp_path: Path) -> None:
    client, store = _client(tmp_path)
    assert "No project builds yet." in client.get("/ui/projects").text
    failed, running = _failed(tmp_path, store), _running(tmp_path, store)
    answer = client.get("/ui/projects")
    assert answer.status_code == 200
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    text = answer.text
    assert '<a href="/ui/projects" aria-current="page">Projects</a>' in text
    assert text.index(f"/ui/projects/{running.id}") < text.index(f"/ui/projects/{failed.id}")
    assert "https://git.example/acme/app.git @ main (c0ffeec0ffee)" in text
    assert html.escape(f"{HOSTILE}.tar.gz") in text and HOSTILE not in text
    assert '<span class="count-bad">2</span>' in text
    assert 'data-live-rows="/ui/projects?partial=rows"' in text
    rows = client.get("/ui/projects?partial=rows").text
    assert rows.count("<tr ") == 2 and 'data-terminal="false"' in rows
    assert "<html" not in rows


def test_a_project_build_page_shows_its_graph_failures_and_uv_configuration(
    tmp_path: Path,
) -> None:
    client, store = _client(tmp_path)
    failed = _failed(tmp_path, store)
    answer = client.get(f"/ui/projects/{failed.id}")
    assert answer.status_code == 200
    page = answer.text
    assert HOSTILE not in page  # the error and the upload's name are text, not markup
    shown = html.unescape(page)
    assert f"{HOSTILE}.tar.gz" in shown and "not built: beta, gamma" in shown
    assert 'data-live=""' in page  # ended: nothing to follow
    assert '<a href="/ui/builds/0123abcd0123abcd">' in page
    assert '<a href="/ui/builds/fedc0123fedc0123">' in page
    assert '<a href="/ui/environments/cpu-plain">cpu-plain</a>' in page
    assert INDEX_URL in page and "cpu, Python 3.11" in page
    assert "12.5s" in page
    assert "<strong>gamma</strong> 0.3 (not built): needs beta, which was not built" in page
    assert f"<strong>beta</strong> 2.0 (failed): {html.escape(HOSTILE)}" in page
    assert f'<pre id="uv-config" tabindex="0">{UV_CONFIG}</pre>' in shown


def test_a_running_project_build_is_followed_by_its_live_json(tmp_path: Path) -> None:
    client, store = _client(tmp_path)
    running = _running(tmp_path, store)
    page = client.get(f"/ui/projects/{running.id}").text
    assert f'data-live="/ui/projects/{running.id}/live"' in page
    assert "shown when the project build ends" in page and 'id="uv-config"' not in page
    running.update(
        packages=[
            node("alpha", "1.0", 1, "built", seconds=4),
            node("beta", "2.0", 2, "running", stage="runtime", seconds=1),
        ]
    )
    live = client.get(f"/ui/projects/{running.id}/live")
    assert live.headers["cache-control"] == "no-store"
    polled = live.json()
    assert (polled["state"], polled["terminal"]) == ("running", False)
    assert 'data-package="beta"' in polled["packages"] and "runtime" in polled["packages"]
    assert "2 in the graph" in polled["summary"]
    running.update(state="succeeded", uv_config=UV_CONFIG, finished_at=time.time())
    assert client.get(f"/ui/projects/{running.id}/live").json()["terminal"] is True


def test_a_lost_project_build_shows_as_lost(tmp_path: Path) -> None:
    client, store = _client(tmp_path)
    running = _running(tmp_path, store)
    running.lose()
    page = html.unescape(client.get(f"/ui/projects/{running.id}").text)
    assert '<span class="state tone-bad" id="state" role="status">lost</span>' in page
    assert "Lost:</strong>\n  lost: the service process running it stopped" in page
    api = client.get(f"/v1/projects/{running.id}").json()
    assert api["state"] == "failed" and api["error"].startswith("lost:")
    assert ">lost</span>" in client.get("/ui/projects").text


@pytest.mark.parametrize(
    "project_build_id",
    ["0" * 32, "not-an-id", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "..%2F..%2Fetc", "A" * 32],
)
def test_an_unknown_or_odd_id_is_the_404_page_naming_it(
    tmp_path: Path, project_build_id: str
) -> None:
    client, _ = _client(tmp_path)
    answer = client.get(f"/ui/projects/{project_build_id}")
    assert answer.status_code == 404
    assert "no project build" in answer.text and "<script>alert" not in answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert client.get(f"/ui/projects/{project_build_id}/live").status_code == 404


def test_a_bad_list_position_is_refused_by_name(tmp_path: Path) -> None:
    client, _ = _client(tmp_path)
    answer = client.get("/ui/projects?before=%3Cb%3E")
    assert answer.status_code == 422
    assert "is not a position in the list of project builds" in answer.text
    assert "<b>" not in answer.text


def test_the_pages_need_the_read_scope_as_the_api_does(tmp_path: Path) -> None:
    tokens = (
        ApiToken(name="reader", token=SecretStr(READ), scopes=("read",)),
        ApiToken(name="nobody", token=SecretStr(NONE), scopes=()),
    )
    client, store = _client(tmp_path, AuthSettings(tokens=tokens, anonymous_index=False))
    running = _running(tmp_path, store)
    paths = ("/ui/projects", f"/ui/projects/{running.id}", f"/ui/projects/{running.id}/live")
    for path in paths:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ui/login?next=")
        refused = client.get(path, headers={"Authorization": f"Bearer {NONE}"})
        assert refused.status_code == 403 and "lacks the &#39;read&#39; scope" in refused.text
        assert client.get(path, headers={"Authorization": f"Bearer {READ}"}).status_code == 200
    api = f"/v1/projects/{running.id}"
    assert client.get(api, headers={"Authorization": f"Bearer {NONE}"}).status_code in (401, 403)
    assert client.get(api, headers={"Authorization": f"Bearer {READ}"}).status_code == 200


def test_the_list_is_bounded_and_pages_to_older_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, store = _client(tmp_path)
    monkeypatch.setattr(projects, "PAGE_SIZE", 2)
    made = [_running(tmp_path, store).id for _ in range(3)]  # written in this order
    first = client.get("/ui/projects").text
    assert [i for i in made if f"/ui/projects/{i}" in first] == made[1:]
    older = re.search(r'href="/ui/projects\?before=([^"]+)" rel="next"', first)
    assert older is not None
    second = client.get(f"/ui/projects?before={older.group(1)}").text
    assert [i for i in made if f"/ui/projects/{i}" in second] == made[:1]
    assert 'rel="next"' not in second and '<a href="/ui/projects">« Newest</a>' in second
    assert f"before={older.group(1)}&amp;partial=rows" in second
