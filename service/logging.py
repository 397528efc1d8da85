"""Structured logs: JSON lines for services, readable lines for the CLI; both carry the build id.

Code binds context with `structlog.contextvars.bind_contextvars(build_id=...)`, and every log call
made while it is bound (in the engine, the executor, the store) carries it.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, json_logs: bool, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
