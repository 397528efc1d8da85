"""The services one worker process uses, made once per process (after the fork).

The Docker client in particular must not cross a fork, so each prefork child makes its own on
first use, which is what `services()` does.
"""

from __future__ import annotations

import os
from functools import cache

from service.config import load_settings
from service.jobs import open_jobs
from service.store import open_store
from worker.executors import make_executor
from worker.runner import Services


@cache
def _for_process(pid: int) -> Services:
    settings = load_settings()
    return Services(
        settings=settings,
        store=open_store(settings),
        jobs=open_jobs(settings),
        executor=make_executor(settings),
    )


def services() -> Services:
    return _for_process(os.getpid())
