"""`/v1/projects` refusals and state through the real FastAPI app (TestClient), no Docker: each
bad input answered 422/404 naming what was wrong, nothing left in the store or on disk; a
project build whose thread breaks ends "failed" with the cause, never "running"."""

from __future__ import annotations

import io
import json
import threading
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import layout
from service.api.app import create_app
from service.config import Settings, load_settings
from service.egress import EgressPolicy
from service.errors import BuildNotFoundError, ConfigError
from service.jobs import MemoryJobs
from service.models import Target
from service.project import served
from service.project.build import ProjectBuild
from service.project.prepared import prepare_project
from service.project.served import ServedParts, ServedProjectBuild, load_state
from service.store import LocalStore
from service.submit import Submitted
from tests.buildkit import tar_gz
from tests.fakes import RecordingDispatcher

PYPROJECT = '[project]\nname = "demo"\nversion = "0.1"\nrequires-python = ">=3.10"\n'


def configured(home: Path, **overrides: Any) -> Settings:
    return load_settings(
        home=home, environments={"cpu-plain": {"target": {"kind": "cpu"}}}, **overrides
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(home: Path, store: LocalStore) -> TestClient:
    app = create_app(
        configured(home), store=store, jobs=MemoryJobs(), dispatcher=RecordingDispatcher()
    )
    return TestClient(app)


def upload(
    client: TestClient, archive: bytes, options: dict[str, Any], name: str = "demo.tar.gz"
) -> Any:
    files = {"file": (name, archive, "application/octet-stream")}
    return client.post("/v1/projects", files=files, data={"options": json.dumps(options)})


def left_behind(home: Path, store: LocalStore) -> list[str]:
    workdirs = [p.name for p in home.glob("project-*")] if home.exists() else []
    return workdirs + [o.key for o in store.list(layout.PROJECT_BUILDS)]


def test_an_unknown_environment_is_refused_by_name(
    client: TestClient, home: Path, store: LocalStore
) -> None:
    archive = tar_gz({"demo/pyproject.toml": PYPROJECT.encode()})
    answer = upload(client, archive, {"environment": "gpu-nowhere"})
    assert answer.status_code == 422
    assert "unknown environment 'gpu-nowhere' (known: cpu-plain)" in answer.json()["detail"]
    assert left_behind(home, store) == []


def test_a_refusal_names_the_project_file_not_the_server_folder(
    client: TestClient, home: Path, store: LocalStore
) -> None:
    old_python = PYPROJECT.replace(">=3.10", "<3")
    archive = tar_gz({"demo/pyproject.toml": old_python.encode()})
    answer = upload(client, archive, {"environment": "cpu-plain"})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail.startswith("pyproject.toml requires Python <3, but the target"), detail
    assert str(home) not in detail and str(home.resolve()) not in detail
    assert left_behind(home, store) == []


def test_an_archive_without_pyproject_is_refused(
    client: TestClient, home: Path, store: LocalStore
) -> None:
    archive = tar_gz({"demo/setup.py": b"print('no pyproject here')\n"})
    answer = upload(client, archive, {"environment": "cpu-plain"})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "none of pyproject.toml, pylock.toml, requirements.txt at its top folder" in detail
    assert str(home) not in detail
    assert left_behind(home, store) == []


def test_an_uploaded_pylock_toml_is_a_project_too(client: TestClient, store: LocalStore) -> None:
    pylock = (
        'lock-version = "1.0"\nrequires-python = ">=3.10"\n[[packages]]\nname = "six"\n'
        'version = "1.16.0"\n'
        'wheels = [{ url = "https://files.example/six-1.16.0-py2.py3-none-any.whl" }]\n'
    )
    answer = upload(client, tar_gz({"demo/pylock.toml": pylock.encode()}), {"target": "cpu"})
    assert answer.status_code == 202, answer.text
    project_build_id = answer.json()["id"]
    deadline = time.monotonic() + 30
    while (state := load_state(store, project_build_id))["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert state["state"] == "succeeded", state["error"]
    assert state["input"] == "pylock.toml"
    assert state["packages"] == [] and state["uv_config"] == ""  # six has a wheel: nothing to build


@pytest.mark.parametrize(
    ("public_url", "index", "link"),
    [
        # no public_url: the index is this process's own loopback at the port the request
        # came in on (TestClient's socket is port 80), never the caller's Host; the Location
        # link only tells the caller, so it may say what the caller called us
        (None, "http://127.0.0.1:80", "http://wheels.forged.example"),
        ("https://wheels.corp.example/ww/", "https://wheels.corp.example/ww", None),
    ],
)
def test_the_index_a_project_build_names_is_the_public_url_or_its_own_never_the_callers_host(
    home: Path, store: LocalStore, public_url: str | None, index: str, link: str | None
) -> None:
    settings = configured(home, public_url=public_url)
    app = create_app(settings, store=store, jobs=MemoryJobs(), dispatcher=RecordingDispatcher())
    client = TestClient(app, base_url="http://wheels.forged.example")
    archive = tar_gz({"demo/pyproject.toml": PYPROJECT.encode()})
    answer = upload(client, archive, {"environment": "cpu-plain"})
    assert answer.status_code == 202, answer.text
    project_build_id = answer.json()["id"]
    assert answer.headers["location"] == f"{link or index}/v1/projects/{project_build_id}"
    deadline = time.monotonic() + 30
    while (state := load_state(store, project_build_id))["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert state["index_url"] == f"{index}/simple/cpu-plain/", state
    assert "forged" not in json.dumps(state)


@pytest.mark.parametrize(
    "bad", ["ftp://wheels.example", "wheels.example", "https://w.example/?a=1"]
)
def test_a_public_url_that_is_no_http_url_is_refused(home: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="public_url"):
        configured(home, public_url=bad)


@pytest.mark.parametrize(
    ("members", "detail"),
    [
        ({"../evil/pyproject.toml": PYPROJECT.encode()}, "would escape the target folder"),
        ({"/etc/pyproject.toml": PYPROJECT.encode()}, "would escape the target folder"),
    ],
)
def test_a_hostile_tar_is_refused(
    client: TestClient, home: Path, store: LocalStore, members: dict[str, bytes], detail: str
) -> None:
    answer = upload(client, tar_gz(members), {"environment": "cpu-plain"})
    assert answer.status_code == 422
    assert detail in answer.json()["detail"]
    assert left_behind(home, store) == []
    assert not (home.parent / "evil").exists()


def test_a_zip_with_a_link_is_refused(client: TestClient, home: Path, store: LocalStore) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("demo/pyproject.toml", PYPROJECT)
        link = zipfile.ZipInfo("demo/secret")
        link.external_attr = (0o120777 << 16) & 0xFFFF0000  # a symlink member
        zf.writestr(link, "/etc/passwd")
    answer = upload(client, buffer.getvalue(), {"environment": "cpu-plain"}, name="demo.zip")
    assert answer.status_code == 422
    assert "link member 'demo/secret' refused" in answer.json()["detail"]
    assert left_behind(home, store) == []


def test_an_archive_of_another_kind_is_refused(client: TestClient) -> None:
    answer = upload(client, b"MZ not an archive", {}, name="demo.exe")
    assert answer.status_code == 422
    assert "must end in .tar.gz" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("git", "detail"),
    [
        ({"url": "file:///srv/repo"}, "file:// sources are not allowed on this service"),
        ({"url": "ext::sh -c touch% /tmp/x"}, "whitespace"),
        ({"url": "ext::git-remote"}, "transport helper"),
        ({"url": "http://git.example.com/a/b.git"}, "must start with one of https://"),
        ({"url": "https://git.example.com/a/b.git", "ref": "--upload-pack=x"}, "not a plain"),
    ],
)
def test_a_disallowed_git_source_is_refused(
    client: TestClient, home: Path, store: LocalStore, git: dict[str, str], detail: str
) -> None:
    answer = client.post("/v1/projects", json={"git": git, "environment": "cpu-plain"})
    assert answer.status_code == 422
    assert detail in answer.json()["detail"]
    assert left_behind(home, store) == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "either an uploaded archive"),
        ({"git": {"url": "https://h.example/a.git"}, "colour": "red"}, "colour: Extra inputs"),
        ({"git": {"url": "https://h.example/a.git"}, "python": "2.7"}, "bad target"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_a_bad_request_names_what_was_wrong(client: TestClient, body: object, detail: str) -> None:
    answer = client.post("/v1/projects", json=body)
    assert answer.status_code == 422
    assert detail in answer.json()["detail"]


def test_an_upload_with_a_git_source_too_is_refused(client: TestClient) -> None:
    archive = tar_gz({"demo/pyproject.toml": PYPROJECT.encode()})
    answer = upload(client, archive, {"git": {"url": "https://h.example/a.git"}})
    assert answer.status_code == 422
    assert "exactly one" in answer.json()["detail"]


UNKNOWN_IDS = ["0" * 32, "not-an-id", "0123456789ABCDEF0123456789ABCDEF"]


@pytest.mark.parametrize("project_build_id", UNKNOWN_IDS)
def test_an_unknown_project_build_is_404(client: TestClient, project_build_id: str) -> None:
    answer = client.get(f"/v1/projects/{project_build_id}")
    assert answer.status_code == 404
    assert "no project build" in answer.json()["detail"]


def wait_ended(store: LocalStore, project_build_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = load_state(store, project_build_id)
        if state["state"] in ("succeeded", "failed"):
            return state
        time.sleep(0.05)
    raise AssertionError(f"project build {project_build_id} did not end")


def test_a_git_fetch_that_fails_ends_failed_with_its_cause(
    home: Path, store: LocalStore, tmp_path: Path
) -> None:
    settings = configured(home, sources={"allow_file_git": True})
    app = create_app(settings, store=store, jobs=MemoryJobs(), dispatcher=RecordingDispatcher())
    client = TestClient(app)
    missing = f"file://{tmp_path}/no-such-repo"
    answer = client.post("/v1/projects", json={"git": {"url": missing}, "environment": "cpu-plain"})
    assert answer.status_code == 202
    started = answer.json()
    assert answer.headers["location"] == started["url"]
    assert started["url"].endswith(f"/v1/projects/{started['id']}")
    state = wait_ended(store, started["id"])
    assert state["state"] == "failed"
    assert "git ls-remote failed" in str(state["error"])
    assert state["source"] == {"kind": "git", "url": missing, "ref": "HEAD"}
    assert client.get(started["url"]).json() == state
    assert list(home.glob("project-*")) == []  # its work folder is gone


def test_a_crash_in_the_thread_ends_failed_not_running(
    home: Path, store: LocalStore, tmp_path: Path
) -> None:
    folder = tmp_path / "work" / "demo"
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(PYPROJECT)

    def broken_index() -> None:
        raise RuntimeError("the index catalog broke")

    parts = ServedParts(
        settings=configured(home),
        store=store,
        jobs=MemoryJobs(),
        dispatcher=RecordingDispatcher(),
        base_url="http://127.0.0.1:9",
        refresh_index=broken_index,
    )
    build = ServedProjectBuild(
        parts,
        target=Target(),
        environment="cpu-plain",
        workdir=tmp_path / "work",
        source={"kind": "upload", "name": "demo.tar.gz"},
        folder=folder,
    )
    build.start().join(timeout=30)
    state = load_state(store, build.id)
    assert state["state"] == "failed"
    assert state["error"] == "RuntimeError: the index catalog broke"
    assert state["environment"] == "cpu-plain"
    assert state["index_url"] == "http://127.0.0.1:9/simple/cpu-plain/"
    assert state["finished_at"] is not None
    assert not (tmp_path / "work").exists()
    with pytest.raises(BuildNotFoundError):
        load_state(store, "f" * 32)


def test_a_project_build_whose_process_died_reads_as_failed_not_running(
    client: TestClient, store: LocalStore
) -> None:
    """The API process that ran it is gone: no heartbeat, so the next read ends it, for good."""
    key = layout.project_build_key("0" * 32)
    stale = time.time() - served.LOST_AFTER_S - 1
    state = {"id": "0" * 32, "state": "running", "heartbeat_at": stale, "error": None}
    store.put(key, json.dumps(state).encode(), content_type="application/json")
    answer = client.get(f"/v1/projects/{'0' * 32}")
    assert answer.status_code == 200
    assert answer.json()["state"] == "failed" and answer.json()["lost"] is True
    assert answer.json()["error"].startswith("lost: the service process running it stopped")
    assert json.loads(store.get(key))["state"] == "failed"  # kept, not only answered
    fresh = {**state, "id": "1" * 32, "heartbeat_at": time.time()}
    store.put(layout.project_build_key("1" * 32), json.dumps(fresh).encode())
    assert client.get(f"/v1/projects/{'1' * 32}").json()["state"] == "running"


def ended(store: LocalStore, project_id: str) -> str:
    deadline = time.monotonic() + 30
    while (state := load_state(store, project_id)["state"]) not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    return str(state)


def hold_project_builds(monkeypatch: pytest.MonkeyPatch, release: threading.Event) -> None:
    """Each project build holds its slot until `release` is set (before it prepares)."""
    original = ServedProjectBuild._run

    def held(self: ServedProjectBuild) -> Any:
        release.wait(30)
        return original(self)

    monkeypatch.setattr(ServedProjectBuild, "_run", held)


def test_project_builds_past_the_limit_wait_in_line_and_run_when_one_ends(
    home: Path, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`limits.max_project_builds` at once per API process: the next is accepted and waits,
    queued, until a slot is free; only a requester whose own line is full gets 429."""
    release = threading.Event()
    hold_project_builds(monkeypatch, release)
    settings = configured(home, limits={"max_project_builds": 1, "max_waiting_project_builds": 1})
    app = create_app(settings, store=store, jobs=MemoryJobs(), dispatcher=RecordingDispatcher())
    client = TestClient(app)
    archive = tar_gz({"demo/pyproject.toml": PYPROJECT.encode()})
    first = upload(client, archive, {"environment": "cpu-plain"})
    assert first.status_code == 202, first.text
    second = upload(client, archive, {"environment": "cpu-plain"})
    assert second.status_code == 202, second.text  # accepted: it waits for the slot
    assert load_state(store, second.json()["id"])["state"] == "queued"
    third = upload(client, archive, {"environment": "cpu-plain"})
    assert third.status_code == 429  # this requester's line holds one already: the cap
    assert "(limits.max_waiting_project_builds)" in third.json()["detail"]
    assert len(list(home.glob("project-*"))) == 2  # the refused one left no folder
    assert load_state(store, second.json()["id"])["state"] == "queued"  # still: no free slot
    release.set()
    assert ended(store, first.json()["id"]) == "succeeded"
    assert ended(store, second.json()["id"]) == "succeeded"  # it ran once the slot was back
    again = upload(client, archive, {"environment": "cpu-plain"})
    assert again.status_code == 202, again.text
    assert ended(store, again.json()["id"]) == "succeeded"


def test_one_token_holds_at_most_its_share_and_the_other_token_starts_meanwhile(
    home: Path, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two slots, a share of one each: a token sending slow project builds runs one, its next
    waits (queued, though a slot is free: that one is the other team's share), and another
    token's build starts meanwhile."""
    release = threading.Event()
    slow, fast = "slow-team-token-0123456789abcdef", "fast-team-token-0123456789abcdef"
    tokens = [
        {"name": "slow-team", "token": slow, "scopes": ["build"]},
        {"name": "fast-team", "token": fast, "scopes": ["build"]},
    ]
    settings = configured(home, limits={"max_project_builds": 2}, auth={"tokens": tokens})
    hold_project_builds(monkeypatch, release)
    app = create_app(settings, store=store, jobs=MemoryJobs(), dispatcher=RecordingDispatcher())
    client = TestClient(app)
    archive = tar_gz({"demo/pyproject.toml": PYPROJECT.encode()})
    files = {"file": ("demo.tar.gz", archive, "application/octet-stream")}
    options = {"options": json.dumps({"environment": "cpu-plain"})}

    def start(token: str) -> Any:
        auth = {"Authorization": f"Bearer {token}"}
        return client.post("/v1/projects", files=files, data=options, headers=auth)

    def state_of(answer: Any) -> str:
        return str(load_state(store, answer.json()["id"])["state"])

    first = start(slow)
    assert first.status_code == 202, first.text
    second = start(slow)
    assert second.status_code == 202, second.text
    other = start(fast)  # the other team is not held back by the first
    assert other.status_code == 202, other.text
    deadline = time.monotonic() + 30
    while state_of(other) != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state_of(second) == "queued"  # slow-team's share is held by its first
    release.set()
    for started in (first, other, second):
        assert ended(store, started.json()["id"]) == "succeeded"
    assert len(list(store.list(layout.PROJECT_BUILDS))) == 3


def test_a_project_with_more_packages_to_build_than_the_limit_is_refused_before_any_is_queued(
    home: Path, store: LocalStore
) -> None:
    packages = "".join(
        f'[[packages]]\nname = "ext{n}"\nversion = "1.0"\n'
        f'sdist = {{ url = "https://files.example/ext{n}-1.0.tar.gz" }}\n\n'
        for n in range(3)
    )
    pylock = f'lock-version = "1.0"\nrequires-python = ">=3.10"\n\n{packages}'
    dispatcher = RecordingDispatcher()
    settings = configured(home, limits={"max_project_packages": 2})
    client = TestClient(create_app(settings, store=store, jobs=MemoryJobs(), dispatcher=dispatcher))
    started = upload(
        client, tar_gz({"demo/pylock.toml": pylock.encode()}), {"environment": "cpu-plain"}
    )
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 30
    while (state := load_state(store, started.json()["id"]))["state"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state["state"] == "failed"
    assert state["error"] == (
        "the project has 3 packages to build, more than this service's limit of 2"
        " (limits.max_project_packages)"
    )
    assert dispatcher.submitted == []
    assert list(home.glob("project-*")) == []


def test_a_small_upload_unpacking_to_a_16_mib_pyproject_is_refused_at_once(
    client: TestClient, home: Path, store: LocalStore
) -> None:
    """The file's size is checked before a byte of it is parsed: 4xx in well under a second,
    naming the file and the limit, and nothing left on the server."""
    huge = PYPROJECT.encode() + b"# " + b"x" * (16 * 1024**2) + b"\n"
    archive = tar_gz({"demo/pyproject.toml": huge})
    assert len(archive) < 64 * 1024  # a small upload
    started = time.monotonic()
    answer = upload(client, archive, {"environment": "cpu-plain"})
    seconds = time.monotonic() - started
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("pyproject.toml is larger than the limit of 1048576 bytes"), detail
    assert "limits.max_pyproject_bytes" in detail and str(home) not in detail
    assert seconds < 1.0, seconds
    assert left_behind(home, store) == []


REQUIREMENTS = "six==1.16.0\n"
PYLOCK = 'lock-version = "1.0"\nrequires-python = ">=3.10"\n'


@pytest.mark.parametrize(
    ("members", "named", "setting"),
    [
        ({"pyproject.toml": PYPROJECT}, "pyproject.toml", "max_pyproject_bytes"),
        ({"pyproject.toml": PYPROJECT, "uv.lock": "version = 1\n"}, "uv.lock", "max_lock_bytes"),
        ({"pylock.toml": PYLOCK}, "pylock.toml", "max_lock_bytes"),
        ({"requirements.txt": REQUIREMENTS}, "requirements.txt", "max_requirements_bytes"),
    ],
)
def test_each_project_file_over_its_limit_is_refused_naming_it(
    home: Path, store: LocalStore, members: dict[str, str], named: str, setting: str
) -> None:
    limits = {setting: 4096}
    app = create_app(
        configured(home, limits=limits),
        store=store,
        jobs=MemoryJobs(),
        dispatcher=RecordingDispatcher(),
    )
    padded = {
        name: text + ("# padding\n" * 500 if name == named else "")
        for name, text in members.items()
    }
    archive = tar_gz({f"demo/{name}": text.encode() for name, text in padded.items()})
    answer = upload(TestClient(app), archive, {"environment": "cpu-plain"})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith(f"{named} is larger than the limit of 4096 bytes"), detail
    assert f"limits.{setting}" in detail
    assert left_behind(home, store) == []


def test_each_project_file_is_parsed_once_from_prepare_to_the_build(
    tmp_path: Path, home: Path, jobs: MemoryJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare_project reads pyproject.toml and uv.lock once each; the build gets them parsed
    (its settings, its lock), and reads neither again."""
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(PYPROJECT + 'dependencies = ["torch==2.13.0"]\n')
    (folder / "uv.lock").write_text(
        'version = 1\nrequires-python = ">=3.10"\n[[package]]\nname = "demo"\nversion = "0.1"\n'
        'source = { virtual = "." }\n'
    )
    parsed: list[str] = []
    real = tomllib.loads

    def counted(text: str, **kwargs: Any) -> dict[str, Any]:
        parsed.append("lock" if text.startswith("version = 1") else "pyproject")
        return real(text, **kwargs)

    monkeypatch.setattr(tomllib, "loads", counted)
    settings = configured(home)
    ready = prepare_project(
        folder, settings, Target(), environment="cpu-plain", base_url="http://127.0.0.1:8000"
    )
    ProjectBuild(
        ready.folder,
        ready.env,
        lambda request: Submitted(),
        jobs,
        settings=ready.settings,
        egress=ready.egress,
        abi_pins=ready.abi_pins,
        pyproject=ready.pyproject,
        lock=ready.lock,
    )
    assert sorted(parsed) == ["lock", "pyproject"]
    assert ready.egress == EgressPolicy.from_settings(settings, own="http://127.0.0.1:8000")


def test_cancel_of_a_project_build_waiting_for_a_slot_ends_it_without_running(
    home: Path, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    settings = configured(home, limits={"max_project_builds": 1})
    hold_project_builds(monkeypatch, release)
    app = create_app(settings, store=store, jobs=MemoryJobs(), dispatcher=RecordingDispatcher())
    client = TestClient(app)
    archive = tar_gz({"demo/pyproject.toml": PYPROJECT.encode()})
    first = upload(client, archive, {"environment": "cpu-plain"})
    second = upload(client, archive, {"environment": "cpu-plain"})
    assert (first.status_code, second.status_code) == (202, 202)
    waiting = second.json()["id"]
    answer = client.post(f"/v1/projects/{waiting}/cancel")
    assert answer.status_code == 202 and answer.json()["state"] == "queued"
    assert ended_or_cancelled(store, waiting) == "cancelled"
    state = load_state(store, waiting)
    assert state["error"] == "cancelled while it waited for a slot" and state["packages"] == []
    assert app.state.project_slots.waiting == 0  # out of the line
    release.set()
    assert ended(store, first.json()["id"]) == "succeeded"  # the other one ran as ever
    assert client.post(f"/v1/projects/{'0' * 32}/cancel").status_code == 404
    again = client.post(f"/v1/projects/{first.json()['id']}/cancel")  # ended: nothing to stop
    assert again.status_code == 202 and again.json()["state"] == "succeeded"
    assert len(list(home.glob("project-*"))) == 0


def ended_or_cancelled(store: LocalStore, project_id: str) -> str:
    deadline = time.monotonic() + 30
    while (state := load_state(store, project_id)["state"]) in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    return str(state)
