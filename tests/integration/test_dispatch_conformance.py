"""One conformance test for every Dispatcher: Celery on a real Redis, the in-process pool, the
group-holding one of project builds (over the pool), and the tests' recording one. Each build
handed over reaches its queue once, alone or in a group; a dispatcher without workers refuses,
naming why, and hands nothing over."""

from __future__ import annotations

import ast
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from service.config import load_settings
from service.dispatch import CeleryDispatcher, Dispatcher, InProcessDispatcher, NoDispatcher
from service.errors import QueueUnavailableError
from service.jobs import MemoryJobs
from service.keys import new_build_id
from service.models import BuildRecord, parse_request
from service.project.wave import WaveDispatcher
from tests.fakes import RecordingDispatcher

pytestmark = pytest.mark.redis
REQUEST = parse_request({"source": {"kind": "requirement", "requirement": "six==1.16.0"}})


def record(queue: str = "cpu") -> BuildRecord:
    return BuildRecord(
        id=new_build_id(),
        request=REQUEST,
        request_key=new_build_id(),
        environment="cpu-py311-x",
        queue=queue,
        project="six",
        created_at=time.time(),
    )


@dataclass
class Subject:
    dispatcher: Dispatcher
    #: the build ids that reached a worker's queue so far, each as often as it did
    delivered: Callable[[], list[str]]
    #: after handing over: what makes held builds go (the group-holding one's flush)
    settle: Callable[[], None] = lambda: None


@pytest.fixture(params=["celery", "in-process", "wave", "recording"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "celery":
        url = request.getfixturevalue("redis_url")
        settings = load_settings(home=tmp_path / "home").model_copy(update={"broker_url": url})
        client = redis.Redis.from_url(url)
        dispatcher = CeleryDispatcher(settings, lambda queue: int(client.llen(queue)))

        def in_broker() -> list[str]:
            ids = []
            for queue in ("cpu", "cuda"):
                for raw in client.lrange(queue, 0, -1):
                    ids += ast.literal_eval(json.loads(raw)["headers"]["argsrepr"])
            return ids

        yield Subject(dispatcher, in_broker)
        return
    if request.param == "recording":
        recording = RecordingDispatcher()
        yield Subject(recording, lambda: [r.id for r in recording.submitted])
        return
    ran: list[str] = []
    lock = threading.Lock()

    def run(build_id: str) -> None:
        with lock:
            ran.append(build_id)

    pool = InProcessDispatcher(run, workers=2)

    def finished() -> list[str]:
        pool.shutdown()  # waits for every build handed over: nothing still on its way
        return list(ran)

    try:
        if request.param == "in-process":
            yield Subject(pool, finished)
        else:
            wave = WaveDispatcher(pool, MemoryJobs())
            yield Subject(wave, finished, settle=wave.flush)
    finally:
        pool.shutdown()


def test_each_build_reaches_its_queue_once_alone_or_in_a_group(subject: Subject) -> None:
    alone = record()
    subject.dispatcher.submit(alone)
    group = [record(), record("cuda"), record()]
    subject.dispatcher.submit_group(group)
    subject.dispatcher.submit_group([])  # an empty group: nothing, and no error
    subject.settle()
    delivered = subject.delivered()
    assert sorted(delivered) == sorted([alone.id, *(r.id for r in group)])
    length = subject.dispatcher.queue_length("cpu")
    assert length is None or length >= 0


def test_a_dispatcher_without_workers_refuses_and_hands_nothing_over() -> None:
    nothing = NoDispatcher()
    with pytest.raises(QueueUnavailableError, match="this service has no workers"):
        nothing.submit(record())
    with pytest.raises(QueueUnavailableError, match="this service has no workers"):
        nothing.submit_group([record()])
    assert nothing.queue_length("cpu") is None
