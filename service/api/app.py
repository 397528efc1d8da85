"""The FastAPI application: `create_app(settings)` wires the store and the routers.

Run it with `uvicorn --factory service.api.app:create_app`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.api.auth_limits import FailedAuthLimits
from service.api.builds import router as builds_router
from service.api.health import router as health_router
from service.api.index import router as index_router
from service.api.limits import BodyLimits
from service.api.multipart import MultipartBuilds, document
from service.api.projects import router as projects_router
from service.api.provenance import router as provenance_router
from service.api.webhooks import router as webhooks_router
from service.auth import index_access
from service.config import Settings, load_settings
from service.dashboard import mount as mount_dashboard
from service.dispatch import CeleryDispatcher, Dispatcher, NoDispatcher
from service.errors import BusyError, WheelwrightError
from service.index.cache import PageCache
from service.index.reindex import fill_once
from service.index.sql import open_catalog
from service.jobs import JobBackend, RedisJobs, open_jobs
from service.project.slots import ProjectSlots
from service.shares import project_share
from service.store import WheelStore, open_store

log = structlog.get_logger("wheelwright.api")


#: how much of a validation message an answer carries (a message may quote the whole input)
MESSAGE_CHARS = 300


def validation_detail(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's validation errors without their inputs: where, what and which kind.

    FastAPI's own handler echoes each error's input, which fails on a body that is not UTF-8
    (a 500) and sends a large body back; a message that quotes the input is shortened.
    """
    detail = []
    for error in errors:
        message = str(error.get("msg", ""))
        if len(message) > MESSAGE_CHARS:
            message = f"{message[:MESSAGE_CHARS]}… ({len(message)} characters)"
        detail.append(
            {"loc": list(error.get("loc", ())), "msg": message, "type": error.get("type")}
        )
    return detail


def create_app(
    settings: Settings | None = None,
    *,
    store: WheelStore | None = None,
    jobs: JobBackend | None = None,
    dispatcher: Dispatcher | None = None,
) -> FastAPI:
    """The API over `settings` (read from the environment when None), its store and queue.

    With a broker configured, builds go to Celery workers and job state lives in Redis; with
    none, `dispatcher` must run builds (the CLI's `serve` passes an in-process one), or
    submitting answers 503 while the index still serves.
    The index reads the catalog database (`database.url`), migrated here; a catalog never
    filled is filled from the store's manifests once, before the app serves.
    """
    settings = settings or load_settings()
    store = store if store is not None else open_store(settings)
    jobs = jobs if jobs is not None else open_jobs(settings)
    if dispatcher is None:
        dispatcher = (
            CeleryDispatcher(settings, jobs.queue_length)
            if isinstance(jobs, RedisJobs)
            else NoDispatcher()
        )
    app = FastAPI(
        title="Wheelwright",
        version="0.1.0",
        description="Builds wheels that cannot be built in isolation and serves them as an index.",
    )
    app.state.settings = settings
    app.state.store = store
    app.state.jobs = jobs
    app.state.dispatcher = dispatcher
    catalog = open_catalog(settings)
    fill_once(store, catalog)
    app.state.index_catalog = catalog
    app.state.index_pages = PageCache()
    limits = settings.limits
    app.state.project_slots = ProjectSlots(
        limits.max_project_builds, project_share(limits), limits.max_waiting_project_builds
    )

    @app.exception_handler(WheelwrightError)
    async def wheelwright_error(_request: Request, exc: Exception) -> JSONResponse:
        status = exc.http_status if isinstance(exc, WheelwrightError) else 500
        headers = {"WWW-Authenticate": 'Basic realm="wheelwright"'} if status == 401 else None
        if isinstance(exc, BusyError):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        return JSONResponse({"detail": validation_detail(errors)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.unexpected_error", path=request.url.path, error=type(exc).__name__)
        detail = f"internal error ({type(exc).__name__}); the service log has the details"
        return JSONResponse({"detail": detail}, status_code=500)

    app.include_router(health_router)
    app.include_router(builds_router)
    app.include_router(projects_router)
    app.include_router(webhooks_router)
    app.include_router(provenance_router)
    app.include_router(index_router, dependencies=[Depends(index_access)])
    mount_dashboard(app)  # the pages at /ui/ (and / leads there)
    app.add_middleware(MultipartBuilds)
    app.add_middleware(BodyLimits, settings=settings)  # before anything reads
    app.add_middleware(FailedAuthLimits, auth=settings.auth)  # outermost: before any token check
    document(app)
    return app
