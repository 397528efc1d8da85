"""A project's wave goes to the workers as one group: held by the wave dispatcher until the wave
is submitted, then one Celery `group` (each build on its target's queue), or failed builds when
nothing can take them (none is left queued for ever)."""

from __future__ import annotations

import time

from service.config import load_settings
from service.dispatch import CeleryDispatcher, NoDispatcher
from service.jobs import MemoryJobs
from service.models import BuildRecord, parse_request
from service.project.wave import WaveDispatcher


def records(*queues: str) -> list[BuildRecord]:
    request = parse_request({"source": {"kind": "requirement", "requirement": "alpha==1.0"}})
    return [
        BuildRecord(
            id=f"build{n}",
            request=request,
            request_key=f"key{n}",
            environment="env",
            queue=queue,
            created_at=time.time(),
        )
        for n, queue in enumerate(queues)
    ]


def test_a_wave_is_one_celery_group_on_the_targets_queues() -> None:
    celery = CeleryDispatcher(load_settings(broker_url="memory://"), lambda queue: 0)
    jobs = MemoryJobs()
    wave = WaveDispatcher(celery, jobs)

    def waiting(queue: str) -> int:
        with celery.app.connection_for_write() as connection:
            return int(connection.default_channel.queue_declare(queue=queue)[1])

    before = (waiting("cpu"), waiting("cuda"))  # the memory broker is one per process
    for record in records("cpu", "cpu", "cuda"):
        jobs.create(record)
        wave.submit(record)
    assert (waiting("cpu"), waiting("cuda")) == before  # held until the wave is whole
    wave.flush()
    assert (waiting("cpu") - before[0], waiting("cuda") - before[1]) == (2, 1)
    wave.flush()  # nothing held: nothing sent twice
    assert (waiting("cpu") - before[0], waiting("cuda") - before[1]) == (2, 1)


def test_a_wave_nobody_can_take_ends_failed_not_queued() -> None:
    jobs = MemoryJobs()
    wave = WaveDispatcher(NoDispatcher(), jobs)
    held = records("cpu", "cpu")
    for record in held:
        jobs.create(record)
        wave.submit(record)
    wave.flush()
    for record in held:
        ended = jobs.get(record.id)
        assert ended.state == "failed"
        assert str(ended.error).startswith("could not be queued: this service has no workers")
