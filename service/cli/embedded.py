"""The service in this process, for commands that need more than one build: the embedded
default of `wheelwright serve` (memory job state, an in-process dispatcher with N workers, the
configured store) and, while they run, the index served on a loopback address so that build
containers (host network for installs) can install what earlier builds published."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from service.config import Settings
from service.dispatch import InProcessDispatcher
from service.errors import ConfigError
from service.jobs import JobBackend, MemoryJobs
from service.models import BuildRequest, Requester
from service.project.wave import WaveDispatcher
from service.store import WheelStore, open_store
from service.submit import Submitted, submit

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Embedded:
    settings: Settings
    store: WheelStore
    jobs: JobBackend
    dispatcher: InProcessDispatcher
    wave: WaveDispatcher

    def submit(self, request: BuildRequest) -> Submitted:
        """Submit as the API does; the build is sent with its wave (`wave.flush`)."""
        return submit(
            request,
            self.settings,
            self.store,
            self.jobs,
            self.wave,
            requested_by=Requester(via="cli"),
        )


@contextmanager
def embedded_service(
    settings: Settings, *, workers: int, submit_with: Settings | None = None
) -> Iterator[Embedded]:
    """Store, job state and `workers` build threads; waits for running builds on the way out.
    The build threads (their egress policy, their git) run with `settings`, the operator's;
    `submit_with`: the settings requests are submitted with, where a project added its own
    environment (`ProjectEnvironment.settings`), which never reach the builds' policy."""
    from worker.executors import make_executor
    from worker.runner import Services, run_job

    settings.home.mkdir(parents=True, exist_ok=True)
    svc = Services(settings, open_store(settings), MemoryJobs(), make_executor(settings))

    def crashed(build_id: str, exc: Exception) -> None:
        svc.jobs.finish(build_id, "failed", error=f"the build runner failed: {exc}")

    def run(build_id: str) -> str:
        return run_job(build_id, svc)

    dispatcher = InProcessDispatcher(run, crashed, workers=workers)
    try:
        wave = WaveDispatcher(dispatcher, svc.jobs)
        yield Embedded(submit_with or settings, svc.store, svc.jobs, dispatcher, wave)
    finally:
        dispatcher.shutdown()


class ServedIndex:
    """The API and index at `base_url`, started the first time something needs it (a lock with
    our index in front, a wave about to build): a repeat run that finds everything in the store
    starts no server. Where a service answers there already (`wheelwright serve` over the same
    store), it is used as it is.

    `refresh()`: the index reads the store again now, before uv or a build asks it for what was
    just published (between refreshes it serves one snapshot, so that the many requests of one
    `uv lock` all see the same index)."""

    def __init__(self, embedded: Embedded, base_url: str) -> None:
        self._embedded = embedded
        self._base_url = base_url
        self._started = False
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        if not self._started:
            self._start()  # the pages read the catalog the builds' publish wrote: nothing to reload

    def _start(self) -> None:
        self._started = True
        parts = urlsplit(self._base_url)
        host, port = parts.hostname or "", parts.port or 80
        if _answers(self._base_url):
            return
        if host not in LOOPBACK:
            raise ConfigError(
                f"nothing answers at {self._base_url}, and only a loopback address is served here"
            )
        import uvicorn

        from service.api.app import create_app

        embedded = self._embedded
        app = create_app(
            embedded.settings,
            store=embedded.store,
            jobs=embedded.jobs,
            dispatcher=embedded.dispatcher,
        )
        with _bound(host, port):
            pass  # free now; uvicorn binds it next
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self._server = server
        self._thread = threading.Thread(target=server.run, name="index", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"could not serve the index at {self._base_url}")
            time.sleep(0.05)

    def close(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)


@contextmanager
def served_index(embedded: Embedded, base_url: str) -> Iterator[ServedIndex]:
    """A `ServedIndex` for the block; its server, if one started, stops at the end."""
    index = ServedIndex(embedded, base_url)
    try:
        yield index
    finally:
        index.close()


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url.rstrip('/')}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def _bound(host: str, port: int) -> Iterator[None]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot serve the index on {host}:{port}: {exc}") from None
        yield
