"""A request prepared once (service/prepare.py), carried on the record, and what the worker does
with it: git refs keyed by their commit, changed sources refused, the soft time limit ended
through the runner's bookkeeping."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from service import layout
from service.config import Settings
from service.errors import InvalidRequestError, SourceChangedError
from service.jobs.memory import MemoryJobs
from service.keys import image_ref, request_key
from service.models import (
    ArchiveSource,
    BuildRecord,
    BuildRequest,
    EnvironmentSpec,
    GitSource,
    Target,
    parse_request,
)
from service.prepare import Prepared, build_image, prepare
from service.store.local import LocalStore
from service.submit import submit
from worker.executors.base import ExecSession
from worker.runner import TIME_LIMIT_ERROR, Services, run_job

COMMIT = "a" * 40
SHA = "b" * 64


def _settings(tmp_path: Path, **update: object) -> Settings:
    return Settings(home=tmp_path / "home", **update)  # type: ignore[arg-type]


def test_prepare_names_the_image_of_the_configured_executor(tmp_path: Path) -> None:
    request = parse_request({"source": {"kind": "requirement", "requirement": "demo==1.0"}})
    docker = prepare(request, _settings(tmp_path))
    host = prepare(request, _settings(tmp_path, executor="host"))
    assert docker.image == image_ref(Target()) == "wheelwright/build-cpu:py3.11"
    assert host.image == "host:python3.11"
    assert docker.key == request_key(request, docker.image) != host.key
    assert docker.environment != host.environment
    inherit = _settings(tmp_path, executor="host", host={"inherit_packages": True})
    assert build_image(Target(), inherit) == "host:python3.11+site"
    assert build_image(Target(), inherit, "docker") == docker.image  # the worker's own executor


def test_prepare_applies_the_named_environment_once(tmp_path: Path) -> None:
    spec = EnvironmentSpec(target=Target(kind="cuda"), runtime=("torch==2.13.0",))
    settings = _settings(tmp_path, environments={"cu130-torch": spec})
    request = parse_request(
        {
            "source": {"kind": "requirement", "requirement": "demo==1.0"},
            "environment": "cu130-torch",
        }
    )
    prepared = prepare(request, settings)
    assert prepared.request.runtime == ("torch==2.13.0",)
    assert prepared.environment == "cu130-torch"
    assert prepared.image == "wheelwright/build-cuda:cu13.0-py3.11"
    with pytest.raises(InvalidRequestError, match="decides target"):
        prepare(prepared.request, settings)  # applied twice would be a second request


def test_prepare_checks_the_hosts_policy(tmp_path: Path) -> None:
    request = parse_request(
        {
            "source": {"kind": "requirement", "requirement": "demo==1.0"},
            "index": {"find_links": ["/not/allowed"]},
        }
    )
    with pytest.raises(InvalidRequestError, match="find-links '/not/allowed'"):
        prepare(request, _settings(tmp_path))


def test_a_git_ref_is_keyed_again_by_its_commit() -> None:
    ref = BuildRequest(source=GitSource(url="https://example.com/org/ops.git", ref="v1"))
    prepared = Prepared.of(ref, "img")
    pinned_source = GitSource(url="https://example.com/org/ops.git", ref="v1", commit=COMMIT)
    pinned = prepared.pinned(ref.model_copy(update={"source": pinned_source}))
    assert pinned.key == request_key(pinned.request, "img") != prepared.key
    assert (pinned.image, pinned.environment) == (prepared.image, prepared.environment)
    assert pinned.pinned(pinned.request) == pinned  # resolved once, kept after


def test_a_git_source_may_not_change_anything_but_its_commit() -> None:
    ref = BuildRequest(source=GitSource(url="https://example.com/org/ops.git", ref="v1"))
    moved = GitSource(url="https://example.com/org/other.git", ref="v1", commit=COMMIT)
    with pytest.raises(SourceChangedError, match="git source is not what was asked for"):
        Prepared.of(ref, "img").pinned(ref.model_copy(update={"source": moved}))


def test_an_archive_must_fetch_with_the_key_it_was_prepared_with() -> None:
    asked = BuildRequest(source=ArchiveSource(path="demo-1.0.tar.gz", sha256=SHA))
    prepared = Prepared.of(asked, "img")
    same = ArchiveSource(path="/tmp/upload-x/demo-1.0.tar.gz", sha256=SHA)  # the path is no part
    prepared.check_fetched(asked.model_copy(update={"source": same}))
    other = ArchiveSource(path="demo-1.0.tar.gz", sha256="c" * 64)
    with pytest.raises(SourceChangedError, match=f"request key {prepared.key}"):
        prepared.check_fetched(asked.model_copy(update={"source": other}))


def test_submit_stores_what_it_prepared_on_the_record(tmp_path: Path) -> None:
    settings = _settings(tmp_path, executor="host")
    queued: list[BuildRecord] = []

    class Queue:
        def submit(self, record: BuildRecord) -> None:
            queued.append(record)

        def submit_group(self, records: Sequence[BuildRecord]) -> None:
            queued.extend(records)

        def queue_length(self, queue: str) -> int | None:
            return len(queued)

    request = parse_request({"source": {"kind": "requirement", "requirement": "demo==1.0"}})
    submitted = submit(request, settings, LocalStore(tmp_path / "store"), MemoryJobs(), Queue())
    expected = prepare(request, settings)
    assert submitted.record == queued[0]
    assert (queued[0].image, queued[0].request_key, queued[0].environment) == (
        expected.image,
        expected.key,
        expected.environment,
    )
    restored = Prepared.from_record(queued[0], request=queued[0].request)
    assert restored == expected


# --- the soft time limit goes through the runner ----------------------------------------------


class _TimeLimitedExecutor:
    """Celery's soft time limit fires while the build's session is being opened."""

    name = "docker"
    compiler_cache = False

    def __init__(self) -> None:
        self.reaped: list[str | None] = []

    @contextmanager
    def session(
        self,
        request: BuildRequest,
        workspace: Path,
        progress: Callable[[str], None],
        *,
        compiler_cache: Path | None = None,
    ) -> Iterator[ExecSession]:
        progress("opening the session")
        raise SoftTimeLimitExceeded
        yield  # pragma: no cover  (a generator that never yields a session)

    def reap(self, build_id: str | None = None) -> int:
        self.reaped.append(build_id)
        return 1


def _sdist(name: str, version: str) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for member, text in {
            "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            "setup.py": "from setuptools import setup\nsetup()\n",
        }.items():
            body = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{member}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return data.getvalue()


def test_the_soft_time_limit_ends_the_build_with_the_runners_bookkeeping(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store, jobs, executor = LocalStore(tmp_path / "store"), MemoryJobs(), _TimeLimitedExecutor()
    body = _sdist("demo", "1.0")
    sha = hashlib.sha256(body).hexdigest()
    key = layout.upload_key(sha, "demo-1.0.tar.gz")
    store.put(key, body)
    request = BuildRequest(source=ArchiveSource(path="demo-1.0.tar.gz", sha256=sha, store_key=key))
    queued: list[BuildRecord] = []

    class Queue:
        def submit(self, record: BuildRecord) -> None:
            queued.append(record)

        def submit_group(self, records: Sequence[BuildRecord]) -> None:
            queued.extend(records)

        def queue_length(self, queue: str) -> int | None:
            return None

    submit(request, settings, store, jobs, Queue())
    build_id = queued[0].id
    state = run_job(build_id, Services(settings, store, jobs, executor))  # type: ignore[arg-type]
    record = jobs.get(build_id)
    assert (state, record.state, record.error) == ("failed", "failed", TIME_LIMIT_ERROR)
    assert executor.reaped == [build_id]
    assert jobs.counters()["builds_failed"] == 1
    kept = store.get(layout.build_log_key(build_id)).decode()
    assert "===> [fetch] start" in kept
    assert "opening the session" in kept
    assert [o.key for o in store.list("logs/")] == [layout.build_log_key(build_id)]  # once
    assert not (settings.home / "logs" / f"{build_id}.log").exists()
