"""`wheelwright serve`, `worker` and `index-config`: running the service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.common import app, err, fail
from service.config import Settings, load_settings
from service.egress import serving_at
from service.errors import ConfigError, WheelwrightError
from service.logging import configure_logging
from service.queues import QUEUES

if TYPE_CHECKING:
    from fastapi import FastAPI


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve the API and the index. With no broker configured, builds run in this process."""
    import uvicorn

    try:
        settings = load_settings()
        if host in ("127.0.0.1", "localhost", "0.0.0.0", "::", ""):  # noqa: S104  (compared)
            # this process's own pages, on its loopback port: its uv and builds may reach them
            settings = serving_at(settings, f"http://127.0.0.1:{port}")
        configure_logging(json_logs=True)
        application = _app(settings)
    except WheelwrightError as exc:
        raise fail(exc) from None
    mode = "Celery workers" if settings.broker_url else "builds in this process"
    err.print(f"serving http://{host}:{port}/ ({mode}); index at /simple/", soft_wrap=True)
    uvicorn.run(application, host=host, port=port, log_level="warning")


def _app(settings: Settings) -> FastAPI:
    """The API; with no broker, it shares its store and job state with an in-process runner."""
    from service.api.app import create_app

    if settings.broker_url:
        return create_app(settings)
    from service.dispatch import InProcessDispatcher
    from service.jobs import MemoryJobs
    from service.store import open_store
    from worker.executors import make_executor
    from worker.runner import Services, run_job

    settings.home.mkdir(parents=True, exist_ok=True)
    svc = Services(settings, open_store(settings), MemoryJobs(), make_executor(settings))

    def crashed(build_id: str, exc: Exception) -> None:
        svc.jobs.finish(build_id, "failed", error=f"the build runner failed: {exc}")

    dispatcher = InProcessDispatcher(lambda build_id: run_job(build_id, svc), crashed)
    return create_app(settings, store=svc.store, jobs=svc.jobs, dispatcher=dispatcher)


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="comma-separated queues: cpu, cuda")] = "cpu",
    concurrency: Annotated[int, typer.Option(help="builds at once in this worker")] = 1,
) -> None:
    """Run a Celery worker that builds from the given queues (needs WHEELWRIGHT_BROKER_URL)."""
    try:
        settings = load_settings()
        if not settings.broker_url:
            raise ConfigError("a worker needs WHEELWRIGHT_BROKER_URL (redis://...)")
        unknown = set(queues.split(",")) - set(QUEUES)
        if unknown:
            raise ConfigError(
                f"unknown queue(s) {', '.join(sorted(unknown))}: use {', '.join(QUEUES)}"
            )
    except WheelwrightError as exc:
        raise fail(exc) from None
    configure_logging(json_logs=True)
    from worker.celery_app import app as celery_app

    celery_app.worker_main(
        ["worker", "--queues", queues, "--concurrency", str(concurrency), "--loglevel", "INFO"]
    )


@app.command("index-config")
def index_config(
    environment: Annotated[str, typer.Argument(help="build environment, as `build` printed it")],
    url: Annotated[str, typer.Option(help="where the service answers")] = "http://127.0.0.1:8000",
    package: Annotated[
        list[str] | None, typer.Option("--package", "-p", help="default: all in the environment")
    ] = None,
) -> None:
    """Print the uv and pip configuration that installs from one environment's index."""
    from service.index.sql import open_catalog
    from service.index_config import render_index_config

    try:
        names = package or open_catalog(load_settings()).project_names(environment)
        print(render_index_config(url, environment, list(names)), end="")
    except WheelwrightError as exc:
        raise fail(exc) from None
