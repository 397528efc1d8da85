"""Submit's decisions (service/submit.py): a cache hit answers with the artifact, identical
requests share one build, a queue that cannot take the build fails it, bad input is refused
before anything is queued. A local store, the in-memory job backend, the fake executor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from service.errors import (
    InvalidRequestError,
    QueueUnavailableError,
    WheelwrightError,
)
from service.jobs import MemoryJobs
from service.models import BuildRequest, parse_request
from service.store import LocalStore
from service.submit import Submitted, submit
from tests.buildkit import make_sdist, uploaded_request
from tests.fakes import Fail, FakeExecutor, RecordingDispatcher
from worker.runner import Services, run_job


@pytest.fixture
def request_(tmp_path: Path, store: LocalStore) -> BuildRequest:
    return uploaded_request(store, make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0"))


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@dataclass
class Api:
    """What `submit` is called with, and the worker that would run what it queues."""

    settings: Settings
    store: LocalStore
    jobs: MemoryJobs
    fake: FakeExecutor
    dispatcher: RecordingDispatcher

    def send(self, request: BuildRequest) -> Submitted:
        return submit(request, self.settings, self.store, self.jobs, self.dispatcher)

    def run(self, submitted: Submitted) -> str:
        assert submitted.record is not None
        services = Services(self.settings, self.store, self.jobs, self.fake)
        return run_job(submitted.record.id, services)


@pytest.fixture
def api(
    settings: Settings,
    store: LocalStore,
    jobs: MemoryJobs,
    fake: FakeExecutor,
    dispatcher: RecordingDispatcher,
) -> Api:
    return Api(settings, store, jobs, fake, dispatcher)


@pytest.fixture
def send(api: Api) -> Any:
    return api.send


def test_a_miss_queues_one_build(
    send: Any, request_: BuildRequest, dispatcher: RecordingDispatcher, jobs: MemoryJobs
) -> None:
    first = send(request_)
    assert first.artifact is None and first.created and first.record is not None
    assert first.record.state == "queued" and first.record.queue == "cpu"
    assert first.record.project == "modern-ext"
    assert dispatcher.submitted == [first.record]
    assert jobs.counters() == {"cache_miss": 1}


def test_identical_requests_share_one_build(
    send: Any, request_: BuildRequest, dispatcher: RecordingDispatcher
) -> None:
    first, second = send(request_), send(request_)
    assert first.created and not second.created
    assert second.record is not None and first.record is not None
    assert second.record.id == first.record.id
    assert len(dispatcher.submitted) == 1


def test_another_environment_is_another_build(
    send: Any, request_: BuildRequest, dispatcher: RecordingDispatcher
) -> None:
    first = send(request_)
    other = send(request_.model_copy(update={"runtime": ("numpy==2.1.0",)}))
    assert other.created and other.record is not None and first.record is not None
    assert other.record.request_key != first.record.request_key
    assert other.record.environment != first.record.environment
    assert len(dispatcher.submitted) == 2


def test_a_built_request_is_answered_from_the_store(api: Api, request_: BuildRequest) -> None:
    first = api.send(request_)
    assert first.record is not None
    assert api.run(first) == "succeeded"
    hit = api.send(request_)
    assert hit.record is None and not hit.created
    assert hit.artifact is not None
    assert hit.artifact.filename.startswith("modern_ext-2.0.0-")
    assert hit.artifact.request_key == first.record.request_key
    assert hit.artifact.environment == first.record.environment
    assert api.store.exists(hit.artifact.wheel_key)
    assert len(api.dispatcher.submitted) == 1, "a hit queues nothing"
    assert api.jobs.counters()["cache_hit"] == 1
    assert api.fake.sessions == 1


def test_a_failed_build_frees_its_request_for_a_new_one(api: Api, request_: BuildRequest) -> None:
    first = api.send(request_)
    assert first.record is not None
    api.fake.script["build"] = Fail("the build backend failed")
    assert api.run(first) == "failed"
    again = api.send(request_)
    assert again.created and again.record is not None and again.record.id != first.record.id


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (ConnectionError("broker down"), "the build could not be queued: broker down"),
        (QueueUnavailableError("Redis does not answer"), "Redis does not answer"),
    ],
)
def test_a_queue_that_cannot_take_the_build_fails_it(
    api: Api, request_: BuildRequest, error: Exception, raised: str
) -> None:
    api.dispatcher.fail = error
    with pytest.raises(QueueUnavailableError, match=raised):
        api.send(request_)
    (record,) = api.jobs.find()
    assert record.state == "failed"
    assert record.error == f"could not be queued: {error}"
    api.dispatcher.fail = None
    again = api.send(request_)
    assert again.created and api.dispatcher.submitted == [again.record], "the key was freed"


def test_bad_input_is_refused_before_anything_is_queued(
    api: Api, request_: BuildRequest, tmp_path: Path
) -> None:
    settings = api.settings

    def _refused(request: BuildRequest) -> WheelwrightError:
        with pytest.raises(WheelwrightError) as info:
            api.send(request)
        assert api.jobs.find() == [] and api.dispatcher.submitted == [], "nothing was queued"
        assert isinstance(info.value, InvalidRequestError)
        return info.value

    folder = parse_request({"source": {"kind": "directory", "path": str(tmp_path)}})
    error = _refused(folder)
    assert "a directory source only works with the local `wheelwright build`" in str(error)

    sdist = make_sdist("modern-ext", tmp_path, "local_only", "1.0")
    not_uploaded = parse_request({"source": {"kind": "archive", "path": str(sdist)}})
    error = _refused(not_uploaded)
    assert str(error) == "an archive source must be uploaded with the request"

    source = request_.source.model_copy(update={"store_key": "uploads/../../etc/passwd"})
    error = _refused(request_.model_copy(update={"source": source}))
    assert str(error) == "an archive source must be uploaded with the request"

    too_long = request_.model_copy(update={"timeout_s": settings.build_timeout_s + 1})
    error = _refused(too_long)
    assert f"is above this service's limit of {settings.build_timeout_s} seconds" in str(error)

    host_folder = request_.model_copy(
        update={"index": request_.index.model_copy(update={"find_links": ("/etc",)})}
    )
    error = _refused(host_folder)
    assert "find-links '/etc' is not an allowed folder on this service" in str(error)

    local_git = parse_request({"source": {"kind": "git", "url": f"file://{tmp_path}"}})
    error = _refused(local_git)
    assert "file:// sources are not allowed on this service" in str(error)

    unknown = request_.model_copy(update={"environment": "no-such-env"})
    error = _refused(unknown)
    assert "unknown environment 'no-such-env'" in str(error)
