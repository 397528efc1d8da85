"""The one Celery task: thin, everything happens in `worker.runner.run_job`.

Retryable failures (the Docker engine, the index or the store out of reach) are retried with a
backoff; the attempt counter in the job record ends endless redelivery either way.
"""

from __future__ import annotations

from celery import Task

from service.errors import WheelwrightError
from service.queues import TASK_NAME
from worker.celery_app import app
from worker.runner import run_job
from worker.services import services


@app.task(name=TASK_NAME, bind=True, max_retries=3)  # type: ignore[untyped-decorator]
def build(self: Task, build_id: str) -> str:
    svc = services()
    may_retry = self.request.retries < (self.max_retries or 0)
    try:
        return run_job(build_id, svc, may_retry=may_retry)  # the soft time limit ends there too
    except WheelwrightError as exc:
        raise self.retry(exc=exc, countdown=min(300, 10 * 2**self.request.retries)) from exc
