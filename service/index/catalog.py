"""The in-memory index of every environment, rebuilt from the store's manifests.

One listing of `builds/` gives every committed manifest; manifests are immutable once written
(conditional put), so each is read once and cached by (key, etag), and a refresh costs one listing
plus the reads of the manifests that are new. A snapshot older than `ttl_s` is refreshed by the
request that finds it stale, while concurrent requests keep getting the previous snapshot;
`invalidate()` makes the next request refresh (call it after publishing in this process).
If the store fails during a refresh, the previous snapshot keeps being served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from service.artifacts import Artifact, is_environment, read_manifest
from service.errors import (
    InvalidArtifactError,
    ObjectNotFoundError,
    StoreError,
    UnknownEnvironmentError,
)
from service.index.model import EnvironmentIndex, build_environment_index
from service.layout import BUILDS, parse_manifest_key
from service.store import StoredObject, WheelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Snapshot:
    environments: Mapping[str, EnvironmentIndex]
    taken_at: float


class IndexCatalog:
    """Environment indexes for the API, refreshed from the store at most every `ttl_s`."""

    def __init__(
        self,
        store: WheelStore,
        *,
        ttl_s: float = 10.0,
        workers: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._workers = workers
        self._clock = clock
        self._snapshot: _Snapshot | None = None
        self._refresh_lock = threading.Lock()
        self._manifests: dict[str, tuple[str | None, Artifact | None]] = {}

    def environment_names(self) -> list[str]:
        return sorted(self._current().environments)

    def environment(self, name: str) -> EnvironmentIndex:
        """The index of `name`; `UnknownEnvironmentError` if nothing was published there."""
        index = self._current().environments.get(name) if is_environment(name) else None
        if index is None:
            raise UnknownEnvironmentError(f"no build environment named {name!r}")
        return index

    def invalidate(self) -> None:
        snapshot = self._snapshot
        if snapshot is not None:
            self._snapshot = _Snapshot(snapshot.environments, float("-inf"))

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() - snapshot.taken_at < self._ttl_s:
            return snapshot
        if snapshot is not None and not self._refresh_lock.acquire(blocking=False):
            return snapshot  # another request is refreshing: serve the previous one meanwhile
        if snapshot is None:
            self._refresh_lock.acquire()
        try:
            latest = self._snapshot
            if latest is not None and latest is not snapshot:
                return latest  # refreshed while we waited
            try:
                self._snapshot = self._load()
            except StoreError:
                if snapshot is None:
                    raise
                log.exception("index refresh failed; serving the previous snapshot")
                self._snapshot = _Snapshot(snapshot.environments, self._clock())
            return self._snapshot
        finally:
            self._refresh_lock.release()

    def _load(self) -> _Snapshot:
        taken_at = self._clock()
        listing = [obj for obj in self._store.list(BUILDS) if parse_manifest_key(obj.key)]
        fresh = [obj for obj in listing if self._manifests.get(obj.key, ("", None))[0] != obj.etag]
        if len(fresh) > 1 and self._workers > 1:
            with ThreadPoolExecutor(max_workers=min(self._workers, len(fresh))) as pool:
                loaded = list(pool.map(self._read, fresh))
        else:
            loaded = [self._read(obj) for obj in fresh]
        fresh_keys = {obj.key for obj in fresh}
        manifests = {o.key: self._manifests[o.key] for o in listing if o.key not in fresh_keys}
        manifests.update(zip((obj.key for obj in fresh), loaded, strict=True))
        self._manifests = manifests
        grouped: dict[str, list[Artifact]] = {}
        for key, (_etag, item) in manifests.items():
            parsed = parse_manifest_key(key)
            if item is not None and parsed is not None:
                grouped.setdefault(parsed[0], []).append(item)
        environments = {
            name: build_environment_index(name, files) for name, files in sorted(grouped.items())
        }
        return _Snapshot(environments, taken_at)

    def _read(self, obj: StoredObject) -> tuple[str | None, Artifact | None]:
        try:
            artifact = read_manifest(self._store.get(obj.key))
        except (InvalidArtifactError, ObjectNotFoundError) as exc:
            log.warning("skipping manifest %s: %s", obj.key, exc)
            return obj.etag, None
        parsed = parse_manifest_key(obj.key)
        if parsed is None or parsed[0] != artifact.environment:
            log.warning(
                "skipping manifest %s: it names environment %s", obj.key, artifact.environment
            )
            return obj.etag, None
        return obj.etag, artifact
