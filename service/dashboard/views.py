"""What the build pages show, computed from build records: rows, durations, the stage timeline.

Pure functions of a `BuildRecord` (and the clock), so the templates only lay things out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from packaging.utils import InvalidSdistFilename, parse_sdist_filename

from service.models import BuildRecord

STAGES = ("fetch", "runtime", "build_deps", "build", "verify", "publish")
NETWORK = {"fetch": True, "runtime": True, "build_deps": True, "build": False, "verify": False}


def duration(seconds: float | None) -> str:
    """`4.2s`, `3m 05s`, `2h 01m`; an empty string for None."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def moment(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def elapsed(record: BuildRecord, now: float | None = None) -> float | None:
    """Seconds the build ran (so far, while it runs); None before it starts."""
    if record.started_at is None:
        return None
    end = record.finished_at if record.finished_at is not None else (now or time.time())
    return max(0.0, end - record.started_at)


def cache_outcome(record: BuildRecord) -> str:
    """`hit`: the worker found the wheel already published (no stage ran); `miss`: it was built;
    empty while that is not known yet."""
    if record.state != "succeeded":
        return ""
    return "hit" if not record.stages else "miss"


def requester(record: BuildRecord) -> str:
    asker = record.requested_by
    if asker is None:
        return ""
    if asker.via == "webhook":
        return f"webhook {asker.delivery or ''} ({asker.repository or 'unknown repository'})"
    return f"{asker.via}, token {asker.token}" if asker.token else asker.via


@dataclass(frozen=True)
class Row:
    id: str
    project: str
    version: str
    environment: str
    state: str
    created: str
    duration: str
    cache: str
    requester: str
    terminal: bool


def row(record: BuildRecord, now: float | None = None) -> Row:
    artifact = record.artifact or {}
    return Row(
        id=record.id,
        project=record.project or "?",
        version=str(artifact.get("version") or _requested_version(record)),
        environment=record.environment,
        state=record.state,
        created=moment(record.created_at),
        duration=duration(elapsed(record, now)),
        cache=cache_outcome(record),
        requester=requester(record),
        terminal=record.terminal,
    )


def _requested_version(record: BuildRecord) -> str:
    source = record.request.source
    if source.kind == "requirement":
        return source.requirement.split("==", 1)[1]
    if source.kind == "git":
        return (source.commit or source.ref)[:12]
    if source.kind == "archive":
        try:
            return str(parse_sdist_filename(PurePosixPath(source.path).name)[1])
        except InvalidSdistFilename:
            return ""
    return ""


@dataclass(frozen=True)
class Bar:
    """One stage on the timeline, in SVG user units (the drawing is `Timeline.width` wide)."""

    name: str
    y: int
    x: float
    width: float
    label: str
    network: bool
    status: str  # ok, failed, running, pending


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    height: int
    width: int = 720
    left: int = 110
    span: int = 470

    @property
    def description(self) -> str:
        parts = [f"{b.name} {b.status} {b.label}".strip() for b in self.bars]
        return "Stages: " + "; ".join(parts)


def timeline(record: BuildRecord, now: float | None = None) -> Timeline:
    """A bar per stage, placed end to end in time; a running stage grows with the clock.

    Stages report their durations, not their start times, so a stage starts where the previous
    one ended (the gaps between stages are milliseconds)."""
    now = now or time.time()
    spans: list[tuple[str, float, float, bool, str]] = []
    clock = 0.0
    known = {stage.name: stage for stage in record.stages}
    for stage in record.stages:
        if stage.seconds is None:
            running = elapsed(record, now) or 0.0
            seconds = max(0.0, running - clock) if not record.terminal else 0.0
            status = "running" if not record.terminal else "failed"
        else:
            seconds = stage.seconds
            status = "ok" if stage.ok is not False else "failed"
        spans.append((stage.name, clock, seconds, stage.network, status))
        clock += seconds
    if not record.terminal:
        spans += [
            (n, clock, 0.0, NETWORK.get(n, True), "pending") for n in STAGES if n not in known
        ]
    total = max(clock, 1e-9)
    bars = []
    base = Timeline([], 0)
    for index, (name, start, seconds, network, status) in enumerate(spans):
        width = 0.0 if status == "pending" else max(2.0, seconds / total * base.span)
        x = base.left + min(start / total * base.span, base.span - width)
        label = "waiting" if status == "pending" else duration(seconds)
        bars.append(Bar(name, 8 + index * 30, round(x, 1), round(width, 1), label, network, status))
    return Timeline(bars, height=16 + 30 * max(1, len(bars)))
