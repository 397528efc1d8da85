"""What the service fetches on a project's behalf, through the real API on a real uvicorn
socket and the real uv, loopback only: an index or find-links URL a project (or a build
request) names on this host's networks is refused before uv runs, naming it, and the server
there sees nothing; a caller's `Host:` header does not choose where uv fetches; the policy is
the operator's, whatever the project names."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from service import layout
from service.api.app import create_app
from service.config import Settings, load_settings
from service.egress import EgressPolicy
from service.errors import InvalidRequestError
from service.jobs import MemoryJobs
from service.models import Target
from service.project.prepared import prepare_project
from service.store import LocalStore
from tests.buildkit import tar_gz
from tests.fakes import RecordingDispatcher
from tests.loopback import Origin, serving

HEAD = '[project]\nname = "demo"\nversion = "0.1"\nrequires-python = ">=3.10"\n'
CPU311 = Target(kind="cpu", python="3.11")


@contextmanager
def live_api(settings: Settings, store: LocalStore) -> Iterator[str]:
    """The API on a real uvicorn socket on 127.0.0.1 (a free port), its builds recorded, not
    run; yields its URL."""
    app = create_app(settings, store=store, jobs=MemoryJobs(), dispatcher=RecordingDispatcher())
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def upload(url: str, files: dict[str, str], **headers: str) -> httpx.Response:
    archive = tar_gz({f"demo/{name}": text.encode() for name, text in files.items()})
    return httpx.post(
        f"{url}/v1/projects",
        files={"file": ("demo.tar.gz", archive, "application/octet-stream")},
        data={"options": json.dumps({"environment": "cpu-plain"})},
        headers=headers,
        timeout=60,
    )


def ended(store: LocalStore, project_build_id: str) -> dict[str, Any]:
    key = layout.project_build_key(project_build_id)
    deadline = time.monotonic() + 120
    while True:
        state: dict[str, Any] = json.loads(store.get(key))
        if state["state"] in ("succeeded", "failed"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


def left_behind(home: Path, store: LocalStore) -> list[str]:
    workdirs = [p.name for p in home.glob("project-*")] if home.exists() else []
    return workdirs + [o.key for o in store.list(layout.PROJECT_BUILDS)]


@pytest.fixture
def metadata() -> Iterator[Origin]:
    """A stand-in for a cloud's metadata service or an admin port: on 127.0.0.2, keeping
    every request it gets (it must get none)."""
    with serving(Origin(host="127.0.0.2", body=b"secret-role-credentials")) as origin:
        yield origin


def configured(home: Path, **overrides: Any) -> Settings:
    return load_settings(
        home=home, environments={"cpu-plain": {"target": {"kind": "cpu"}}}, **overrides
    )


@pytest.mark.parametrize(
    "tool_uv",
    [
        '[[tool.uv.index]]\nname = "meta"\nurl = "{url}"\ndefault = true\n',
        '[tool.uv]\nindex-url = "{url}"\n',
        '[tool.uv]\nextra-index-url = ["{url}"]\n',
        '[tool.uv]\nfind-links = ["{url}"]\n',
        '[tool.uv.sources]\niam = {{ url = "{url}iam-1.0.tar.gz" }}\n',
        '[tool.uv.sources]\niam = {{ git = "{https}iam.git" }}\n',
    ],
)
def test_a_project_naming_an_index_on_this_hosts_network_is_refused_naming_it(
    tmp_path: Path, store: LocalStore, metadata: Origin, tool_uv: str
) -> None:
    home = tmp_path / "home"
    url = f"http://127.0.0.2:{metadata.port}/latest/meta-data/"
    https = url.replace("http://", "https://")
    pyproject = HEAD + 'dependencies = ["iam"]\n' + tool_uv.format(url=url, https=https)
    with live_api(configured(home), store) as api:
        answer = upload(api, {"pyproject.toml": pyproject})
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert url.split("://")[1] in detail and "refused before uv runs" in detail, detail
        assert "127.0.0.2 is 127.0.0.2, an address of this host" in detail
        assert httpx.get(f"{api}/healthz", timeout=10).status_code == 200  # still answering
    assert metadata.requests == []
    assert left_behind(home, store) == []


def test_a_build_request_naming_an_index_on_this_hosts_network_is_refused_naming_it(
    tmp_path: Path, store: LocalStore, metadata: Origin
) -> None:
    url = f"http://127.0.0.2:{metadata.port}/latest/meta-data/"
    request = {"source": {"kind": "requirement", "requirement": "iam==1.0"}}
    with live_api(configured(tmp_path / "home"), store) as api:
        for index in ({"index_url": url}, {"extra_index_urls": [url]}, {"find_links": [url]}):
            answer = httpx.post(f"{api}/v1/builds", json={**request, "index": index}, timeout=30)
            assert answer.status_code == 422, answer.text
            assert url in answer.json()["detail"] and "refused" in answer.json()["detail"]
        # an uploaded sdist with such an index: refused before the upload is stored
        sdist = tar_gz({"iam-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: iam\nVersion: 1.0\n"})
        answer = httpx.post(
            f"{api}/v1/builds/upload",
            files={"file": ("iam-1.0.tar.gz", sdist, "application/gzip")},
            data={"options": json.dumps({"index": {"extra_index_urls": [url]}})},
            timeout=30,
        )
        assert answer.status_code == 422 and url in answer.json()["detail"], answer.text
    assert metadata.requests == []
    assert list(store.list("")) == []  # no upload kept, no build record


def test_an_allowed_host_and_port_is_let_in_and_no_other_port_of_it(
    tmp_path: Path, store: LocalStore, metadata: Origin
) -> None:
    """The operator allows 127.0.0.2 at one port: a project naming another port of the same
    host (where Redis or an admin page may listen) is still refused."""
    with serving(Origin(host="127.0.0.2", status=404)) as allowed:
        entry = f"127.0.0.2:{allowed.port}"
        settings = configured(tmp_path / "home", sources={"private_hosts": [entry]})
        other = f"http://127.0.0.2:{metadata.port}/simple/"
        with live_api(settings, store) as api:
            refused = upload(api, {"pyproject.toml": HEAD + f'[tool.uv]\nindex-url = "{other}"\n'})
            assert refused.status_code == 422 and other in refused.json()["detail"], refused.text
            ours = f"http://127.0.0.2:{allowed.port}/simple/"
            text = HEAD + f'dependencies = ["iam"]\n[tool.uv]\nindex-url = "{ours}"\n'
            started = upload(api, {"pyproject.toml": text})
            assert started.status_code == 202, started.text
            state = ended(store, started.json()["id"])
        assert state["state"] == "failed" and "iam" in str(state["error"]), state
        assert "/simple/iam/" in allowed.paths  # uv asked the allowed one
    assert metadata.requests == []


def test_a_host_header_does_not_choose_where_uv_fetches(tmp_path: Path, store: LocalStore) -> None:
    """No `public_url`: the project's uv reads our index at this process's own loopback port;
    a `Host:` naming another loopback server changes nothing, and that server sees nothing."""
    with (
        serving(Origin(host="127.0.0.3")) as elsewhere,
        serving(Origin(status=404)) as team_index,
    ):
        entry = f"127.0.0.1:{team_index.port}"
        settings = configured(tmp_path / "home", sources={"private_hosts": [entry]})
        index = f"http://127.0.0.1:{team_index.port}/simple/"
        tool_uv = f'[[tool.uv.index]]\nname = "team"\nurl = "{index}"\ndefault = true\n'
        text = HEAD + 'dependencies = ["nothing-here-at-all"]\n' + tool_uv
        with live_api(settings, store) as api:
            host = f"127.0.0.3:{elsewhere.port}"
            started = upload(api, {"pyproject.toml": text}, Host=host)
            assert started.status_code == 202, started.text
            state = ended(store, started.json()["id"])
        assert state["index_url"] == f"{api}/simple/cpu-plain/", state
        assert state["state"] == "failed" and "nothing-here-at-all" in str(state["error"])
        assert "refused" not in str(state["error"]), state["error"]  # our own port: allowed
        assert "/simple/nothing-here-at-all/" in team_index.paths  # uv did run and ask
        assert elsewhere.requests == []
        assert "127.0.0.3" not in json.dumps(state)


# the project's own indexes: public addresses (TEST-NET-2 literals, resolved without DNS) and
# private ones, on any port; what a project names must never show in the policy
_hosts = st.sampled_from(["198.51.100.7", "198.51.100.9", "127.0.0.1", "10.0.0.8"])
_ports = st.integers(min_value=1, max_value=65535).filter(lambda port: port != 8000)  # not ours
_urls = st.builds("http://{}:{}/simple/".format, _hosts, _ports)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(indexes=st.lists(_urls, max_size=4), links=st.lists(_urls, max_size=2))
def test_no_project_or_request_field_changes_the_policy(
    tmp_path: Path, indexes: list[str], links: list[str]
) -> None:
    operator = load_settings(
        home=tmp_path / "home",
        sources={"private_hosts": ["pypi.corp.internal:443"]},
        index={"extra_index_urls": ["https://mirror.corp.internal:8443/simple/"]},
    )
    own = "http://127.0.0.1:8000"
    expected = EgressPolicy.from_settings(operator, own=own)
    tables = "".join(
        f'[[tool.uv.index]]\nname = "i{n}"\nurl = "{u}"\n' for n, u in enumerate(indexes)
    )
    uv = f"[tool.uv]\nfind-links = {json.dumps(links)}\n"
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        (Path(scratch) / "pyproject.toml").write_text(HEAD + uv + tables)
        try:
            ready = prepare_project(Path(scratch), operator, CPU311, environment=None, base_url=own)
        except InvalidRequestError as exc:  # a private one is refused, naming it
            assert any(u in str(exc) for u in (*indexes, *links)), exc
            assert any(("127.0.0.1" in u or "10.0.0.8" in u) for u in (*indexes, *links))
            return
    assert ready.egress == expected
    # the project's environment, added for submitting its builds, is not what made it
    assert EgressPolicy.from_settings(ready.settings, own=own).allowed >= expected.allowed
    assert not any(("198.51.100" in h) for h, _ in ready.egress.allowed)
    assert all("127.0.0.1" not in u and "10.0.0.8" not in u for u in (*indexes, *links))
