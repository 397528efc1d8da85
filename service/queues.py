"""The queue contract between the API and the workers, in one module both import.

The service enqueues by task name and never imports the worker package, so the API image stays
small; the worker's Celery app registers its one task under the same name and reads the same
settings. One queue per target kind: a request's queue is its target's kind.
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Queue

from service.config import Settings
from service.models import Target

TASK_NAME = "wheelwright.build"
QUEUES = ("cpu", "cuda")
DEFAULT_QUEUE = "cpu"


def queue_for(target: Target) -> str:
    """The queue whose workers build for `target`."""
    return target.kind


def celery_config(settings: Settings) -> dict[str, Any]:
    """Settings for builds that run for hours (see DESIGN.md, "Service and queue")."""
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "task_queues": [Queue(name) for name in QUEUES],  # type: ignore[no-untyped-call]
        "task_default_queue": DEFAULT_QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.soft_time_limit_s,
        "task_time_limit": settings.hard_time_limit_s,
        "task_ignore_result": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_serializer": "json",
        "accept_content": ["json"],
    }
