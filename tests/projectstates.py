"""Project build states for the dashboard's tests, saved through the real code path: a
`ServedProjectBuild` of the service's own parts, its fields set as a run sets them, written by its
own `save()` (so the JSON is what `GET /v1/projects/{id}` and the dashboard read in production).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from service import layout
from service.config import Settings
from service.dispatch import NoDispatcher
from service.jobs import MemoryJobs
from service.models import Target
from service.project.run import NodeProgress, NodeState
from service.project.served import LOST_AFTER_S, ServedParts, ServedProjectBuild
from service.store import WheelStore

ENVIRONMENT = "cpu-plain"
INDEX_URL = f"http://127.0.0.1:9/simple/{ENVIRONMENT}/"


def parts_of(
    settings: Settings, store: WheelStore, base_url: str = "http://127.0.0.1:9"
) -> ServedParts:
    return ServedParts(
        settings=settings,
        store=store,
        jobs=MemoryJobs(),
        dispatcher=NoDispatcher(),
        base_url=base_url,
        refresh_index=lambda: None,
    )


def node(
    name: str,
    version: str,
    wave: int,
    state: NodeState,
    *,
    stage: str | None = None,
    build_id: str | None = None,
    seconds: float | None = None,
    error: str | None = None,
    note: str | None = None,
    wheel: str | None = None,
) -> NodeProgress:
    """A package's progress as the project run keeps it (`seconds` of it so far)."""
    now = time.monotonic()
    return NodeProgress(
        name,
        version,
        wave,
        state,
        stage=stage,
        build_id=build_id,
        started=now - seconds if seconds is not None else None,
        finished=now if seconds is not None and state not in ("running", "queued") else None,
        error=error,
        note=note,
        wheel=wheel,
    )


class SavedProjectBuild:
    """A project build whose state the test sets and saves, as the run thread would."""

    def __init__(
        self, parts: ServedParts, workdir: Path, source: dict[str, object], **state: object
    ) -> None:
        self.build = ServedProjectBuild(
            parts, target=Target(), environment=ENVIRONMENT, workdir=workdir, source=source
        )
        self.build.state.update(state)
        self.build.save()

    @property
    def id(self) -> str:
        return self.build.id

    def update(self, *, packages: Sequence[NodeProgress] = (), **state: object) -> None:
        if packages:
            state["packages"] = [p.as_json(time.monotonic()) for p in packages]
        self.build.state.update(state)
        self.build.save()

    def lose(self) -> None:
        """Its process stopped: no heartbeat for longer than a reader waits."""
        store = self.build.parts.store
        key = layout.project_build_key(self.id)
        saved = json.loads(store.get(key))
        saved["heartbeat_at"] = time.time() - LOST_AFTER_S - 5
        store.put(key, json.dumps(saved).encode(), content_type="application/json")


def packages_of(*nodes: NodeProgress) -> list[dict[str, object]]:
    return [n.as_json(time.monotonic()) for n in nodes]
