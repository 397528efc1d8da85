"""Prometheus metrics from counters every process shares through the job backend.

Workers and API replicas add to the same counters (`JobBackend.count`), so one scrape of any
API replica sees the whole service: cache hits and misses, build durations by stage (a
histogram), builds by outcome, and the depth of each queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from service.jobs import JobBackend
from service.queues import QUEUES

STAGE_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)


def record_stage(jobs: JobBackend, stage: str, seconds: float) -> None:
    """Add one stage duration to the shared histogram."""
    jobs.count(f"stage_sum:{stage}", seconds)
    jobs.count(f"stage_count:{stage}")
    for bound in STAGE_BUCKETS:
        if seconds <= bound:
            jobs.count(f"stage_bucket:{stage}:{bound}")


COMPILE_RESULTS = ("hits", "misses", "not_cacheable")


def record_compiler_cache(jobs: JobBackend, manifest: Mapping[str, Any]) -> None:
    """Add one build's sccache counts (from its manifest) to the shared counters."""
    section = manifest.get("compiler_cache")
    counts = section.get("counts") if isinstance(section, Mapping) else None
    if not isinstance(counts, Mapping):
        return
    for result in COMPILE_RESULTS:
        jobs.count(f"compiler_cache:{result}", float(counts.get(result, 0)))
    jobs.count("compiler_cache:builds")


class SharedCollector(Collector):
    def __init__(self, jobs: JobBackend, queue_length: Callable[[str], int | None] | None) -> None:
        self.jobs = jobs
        self.queue_length = queue_length

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        counters = self.jobs.counters()
        cache = CounterMetricFamily(
            "wheelwright_cache_requests", "Build requests by cache result", labels=["result"]
        )
        for result in ("hit", "miss"):
            cache.add_metric([result], counters.get(f"cache_{result}", 0.0))
        yield cache
        outcomes = CounterMetricFamily(
            "wheelwright_builds_finished", "Builds by final state", labels=["state"]
        )
        for state in ("succeeded", "failed", "cancelled"):
            outcomes.add_metric([state], counters.get(f"builds_{state}", 0.0))
        yield outcomes
        compiles = CounterMetricFamily(
            "wheelwright_compiler_cache_compiles",
            "Compiles of built requests by sccache's result",
            labels=["result"],
        )
        for result in COMPILE_RESULTS:
            compiles.add_metric([result], counters.get(f"compiler_cache:{result}", 0.0))
        yield compiles
        yield CounterMetricFamily(
            "wheelwright_compiler_cache_builds",
            "Builds that used the compiler cache",
            value=counters.get("compiler_cache:builds", 0.0),
        )
        stages = HistogramMetricFamily(
            "wheelwright_stage_duration_seconds", "Build stage durations", labels=["stage"]
        )
        for stage in sorted({k.split(":")[1] for k in counters if k.startswith("stage_count:")}):
            buckets = [
                (str(bound), counters.get(f"stage_bucket:{stage}:{bound}", 0.0))
                for bound in STAGE_BUCKETS
            ]
            count = counters[f"stage_count:{stage}"]
            stages.add_metric(
                [stage], [*buckets, ("+Inf", count)], counters.get(f"stage_sum:{stage}", 0.0)
            )
        yield stages
        if self.queue_length is not None:
            depth = GaugeMetricFamily("wheelwright_queue_depth", "Queued builds", labels=["queue"])
            for queue in QUEUES:
                length = self.queue_length(queue)
                if length is not None:
                    depth.add_metric([queue], length)
            yield depth


def render(jobs: JobBackend, queue_length: Callable[[str], int | None] | None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SharedCollector(jobs, queue_length))
    return generate_latest(registry)
