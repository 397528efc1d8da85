"""The overview's figures: builds per day, cache hit rate, median build time per environment.

Computed from the most recent builds the job backend lists (and its shared counters for the
cache), laid out as inline SVG bar charts by the template.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.dashboard.views import duration, elapsed
from service.models import BuildRecord

DAYS = 14
STATES = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class DayBar:
    day: str
    x: float
    segments: list[tuple[str, float, float, int]]  # state, y, height, count
    total: int


@dataclass(frozen=True)
class EnvBar:
    environment: str
    y: int
    width: float
    label: str
    builds: int


@dataclass(frozen=True)
class Overview:
    days: list[DayBar]
    day_max: int
    environments: list[EnvBar]
    hits: int
    misses: int
    sampled: int

    @property
    def hit_rate(self) -> float | None:
        asked = self.hits + self.misses
        return self.hits / asked if asked else None


def _day(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def overview(
    records: Sequence[BuildRecord], counters: Mapping[str, float], now: float | None = None
) -> Overview:
    now = now or time.time()
    today = datetime.fromtimestamp(now, UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(DAYS - 1, -1, -1)]
    per_day: dict[str, Counter[str]] = {day: Counter() for day in days}
    times: dict[str, list[float]] = defaultdict(list)
    for record in records:
        day = _day(record.created_at)
        if day in per_day and record.state in STATES:
            per_day[day][record.state] += 1
        seconds = elapsed(record, now)
        if record.state == "succeeded" and record.stages and seconds is not None:
            times[record.environment].append(seconds)
    day_max = max([sum(c.values()) for c in per_day.values()] + [1])
    bars = []
    for index, day in enumerate(days):
        top, segments = 150.0, []
        for state in STATES:
            count = per_day[day][state]
            if count:
                height = count / day_max * 140
                top -= height
                segments.append((state, round(top, 1), round(height, 1), count))
        bars.append(DayBar(day, 40 + index * 46, segments, sum(per_day[day].values())))
    medians = sorted(((env, statistics.median(ts), len(ts)) for env, ts in times.items()))
    longest = max([m for _, m, _ in medians] + [1e-9])
    envs = [
        EnvBar(env, 6 + i * 28, round(max(2.0, m / longest * 300), 1), duration(m), n)
        for i, (env, m, n) in enumerate(medians)
    ]
    return Overview(
        days=bars,
        day_max=day_max,
        environments=envs,
        hits=int(counters.get("cache_hit", 0)),
        misses=int(counters.get("cache_miss", 0)),
        sampled=len(records),
    )
