"""Liveness, readiness (Redis, the store and the index catalog answer) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from service import metrics
from service.errors import WheelwrightError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency does not answer"}})
def readyz(request: Request) -> JSONResponse:
    """Ready when the job backend (Redis), the store and the index catalog all answer."""
    checks: dict[str, str] = {}
    state = request.app.state
    probes = (
        ("jobs", state.jobs.ping),
        ("store", lambda: state.store.exists("readyz")),
        ("catalog", state.index_catalog.ready),
    )
    for name, probe in probes:
        try:
            probe()
            checks[name] = "ok"
        except WheelwrightError as exc:
            checks[name] = str(exc)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def prometheus(request: Request) -> Response:
    """Prometheus text: cache hits and misses, stage durations, outcomes, queue depth."""
    body = metrics.render(request.app.state.jobs, request.app.state.dispatcher.queue_length)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
