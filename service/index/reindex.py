"""Rebuild the catalog from the store's manifests: the repair of a catalog that lags the store.

One listing of `builds/`, the manifests read by a thread pool (S3 latency, not CPU, is the
cost), the rows upserted in batches as they arrive, then the rows whose manifest is gone
removed (only those older than the listing: a publish that lands meanwhile keeps its row).
A manifest that cannot be read, or that names another environment than its key, is skipped
with a warning, as the pages always skipped it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from service.artifacts import read_manifest
from service.errors import InvalidArtifactError, ObjectNotFoundError
from service.index.catalog import Catalog
from service.index.model import CatalogFile
from service.layout import BUILDS, parse_manifest_key
from service.store import WheelStore

log = logging.getLogger(__name__)
PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class Progress:
    read: int
    total: int
    skipped: int
    elapsed_s: float


@dataclass(frozen=True)
class Reindexed:
    manifests: int
    recorded: int
    skipped: int
    removed: int
    elapsed_s: float

    @property
    def per_second(self) -> float:
        return self.manifests / self.elapsed_s if self.elapsed_s > 0 else 0.0


def reindex(
    store: WheelStore,
    catalog: Catalog,
    *,
    workers: int = 16,
    progress: Callable[[Progress], None] | None = None,
) -> Reindexed:
    """Make the catalog list exactly the store's committed manifests."""
    started = time.monotonic()
    started_us = int(time.time() * 1_000_000)
    keys = [obj.key for obj in store.list(BUILDS) if parse_manifest_key(obj.key)]
    seen: set[tuple[str, str]] = set()
    skipped = 0

    def read(key: str) -> CatalogFile | None:
        try:
            artifact = read_manifest(store.get(key))
        except (InvalidArtifactError, ObjectNotFoundError) as exc:
            log.warning("skipping manifest %s: %s", key, exc)
            return None
        parsed = parse_manifest_key(key)
        if parsed is None or parsed[0] != artifact.environment:
            log.warning("skipping manifest %s: it names environment %s", key, artifact.environment)
            return None
        return CatalogFile.of(artifact)

    def rows() -> Iterator[CatalogFile]:
        nonlocal skipped
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for done, item in enumerate(pool.map(read, keys), start=1):
                if item is None:
                    skipped += 1
                else:
                    seen.add((item.environment, item.request_key))
                    yield item
                if progress is not None and (done % PROGRESS_EVERY == 0 or done == len(keys)):
                    progress(Progress(done, len(keys), skipped, time.monotonic() - started))

    recorded = catalog.record_many(rows())
    removed = catalog.prune(seen, published_before_us=started_us)
    catalog.mark_filled()
    return Reindexed(len(keys), recorded, skipped, removed, time.monotonic() - started)


def fill_once(store: WheelStore, catalog: Catalog) -> Reindexed | None:
    """Reindex a catalog that was never filled (its first start over an existing store);
    afterwards a start reads no manifest."""
    if catalog.filled():
        return None
    found = reindex(store, catalog)
    log.info("catalog filled from %d manifests in %.1f s", found.manifests, found.elapsed_s)
    return found
