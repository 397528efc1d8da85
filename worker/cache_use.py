"""How one build uses its project's compiler cache: decided, brought, reported, saved.

The engine calls these around the executor's stages; the store work is `compiler_cache.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from service.config import Settings
from service.errors import WheelwrightError
from service.models import Requester
from service.store import WheelStore
from worker import compiler_cache
from worker.cache_scope import Scope, project_scope
from worker.epoch import source_date_epoch
from worker.executors import Executor
from worker.fetch import Fetched, git_for
from worker.plan import BuildInputs

T = TypeVar("T")
log = structlog.get_logger("wheelwright.engine")


class Sections(Protocol):
    """The engine's log: lines, and timed sections."""

    def line(self, text: str) -> None: ...

    def run(self, stage: str, network: bool, action: Callable[[], T]) -> T: ...


@dataclass
class CacheUse:
    """Whether this build uses the compiler cache, whose, and what was brought."""

    reason: str
    store: WheelStore | None = None
    scope: Scope | None = None
    brought: compiler_cache.Brought | None = None

    @classmethod
    def decide(
        cls,
        fetched: Fetched,
        settings: Settings,
        executor: Executor,
        store: WheelStore | None,
        requester: Requester | None = None,
    ) -> CacheUse:
        """Whether the build uses the cache, and its scope: its origin's (`worker.cache_scope`),
        `requester` being who asked (an upload's scope is theirs)."""
        reason = compiler_cache.why_off(
            fetched.request,
            settings.compiler_cache.enabled,
            getattr(executor, "compiler_cache", False),
            store is not None,
        )
        if reason:
            return cls(reason)
        scope = project_scope(fetched, requester)
        if scope is None:
            return cls("the project has no name (or no known origin) before its code runs")
        return cls("", store, scope)

    def prepare(
        self, rec: Sections, fetched: Fetched, workspace: Path, folder: Path, settings: Settings
    ) -> BuildInputs:
        """The build's fixed time (SOURCE_DATE_EPOCH) and its compiler cache, brought."""
        epoch = source_date_epoch(fetched, workspace, git_for(settings))
        rec.line(f"SOURCE_DATE_EPOCH={epoch} (from the source)")
        self.bring(rec, folder, settings)
        limit = settings.compiler_cache.max_bytes if self.brought else None
        return BuildInputs(source_date_epoch=epoch, compiler_cache_bytes=limit)

    def folder(self, folder: Path) -> Path | None:
        return folder if self.brought is not None else None

    def bring(self, rec: Sections, folder: Path, settings: Settings) -> None:
        if self.reason:
            rec.line(f"compiler cache: off ({self.reason})")
            return
        store, scope, limits = self.store, self.scope, cache_limits(settings)
        if store is None or scope is None:
            return
        self.brought = rec.run(
            "compiler_cache_in",
            True,
            lambda: compiler_cache.bring_or_cold(store, scope, folder, limits, rec.line),
        )

    def save(
        self, rec: Sections, folder: Path, settings: Settings, counts: dict[str, Any] | None
    ) -> None:
        """Save the cache of a published build; a failure to save never fails the build."""
        store, brought = self.store, self.brought
        if store is None or brought is None:
            return
        rec.run(
            "compiler_cache_out",
            True,
            lambda: _save_cache(store, brought, counts, folder, settings, say=rec.line),
        )

    def report(self, stats: Any, say: Callable[[str], None]) -> dict[str, Any]:
        """The manifest's `compiler_cache` section; the figures go to the log too."""
        if self.brought is None:
            return {"enabled": False, "reason": self.reason}
        counts = compiler_cache.figures(stats)
        if counts is None:
            say("compiler cache: sccache reported no statistics")
        else:
            reasons = ", ".join(f"{k}: {v}" for k, v in counts["not_cacheable_reasons"].items())
            say(
                f"compiler cache: {counts['compiles']} compiles, {counts['hits']} hits,"
                f" {counts['misses']} misses, {counts['not_cacheable']} not cacheable"
                + (f" ({reasons})" if reasons else "")
            )
            log.info("compiler_cache.stats", scope=self.brought.scope, **_flat(counts))
        section = {"enabled": True, **self.brought.facts(), "counts": counts}
        scope = self.scope
        if scope is not None and scope.git_ref is not None:  # its ref, and whose cache it read
            ref, read = scope.git_ref, self.brought.read_scope
            shared = scope.name if ref.shared else scope.fallback
            section["git"] = {
                "ref_class": ref.kind,
                "ref": ref.name,
                "read_shared": read is not None and read == shared,
            }
        return section


def cache_limits(settings: Settings) -> compiler_cache.Limits:
    own = settings.compiler_cache
    return compiler_cache.Limits(max_bytes=own.max_bytes, max_members=own.max_members)


def _flat(counts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in counts.items() if not isinstance(v, dict)}


def _save_cache(
    store: WheelStore,
    brought: compiler_cache.Brought,
    counts: dict[str, Any] | None,
    folder: Path,
    settings: Settings,
    *,
    say: Callable[[str], None],
) -> None:
    reason = compiler_cache.save_reason(brought, counts)
    if reason:
        say(f"compiler cache: not saved ({reason})")
        return
    try:
        saved = compiler_cache.save(
            store, brought, folder, cache_limits(settings), settings.work_dir
        )
    except (WheelwrightError, OSError) as exc:
        say(f"--- compiler cache: not saved ({type(exc).__name__}: {exc})")
        return
    if saved["saved"]:
        say(
            f"compiler cache: saved generation {saved['generation']} ({saved['files']} files,"
            f" {saved['bytes']} bytes, {saved['evicted_files']} evicted) in {saved['seconds']:.1f}s"
        )
    else:
        say(f"compiler cache: not saved ({saved['reason']})")
    log.info("compiler_cache.save", scope=brought.scope, **saved)
