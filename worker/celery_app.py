"""The Celery app of the workers: `celery -A worker.celery_app worker -Q cpu` (or
`wheelwright worker --queues cpu,cuda`). Its settings come from `service.queues.celery_config`,
shared with the API that enqueues by task name.
"""

from __future__ import annotations

from celery import Celery

from service.config import load_settings
from service.queues import celery_config

app = Celery("wheelwright", include=["worker.tasks"])
app.conf.update(celery_config(load_settings()))
