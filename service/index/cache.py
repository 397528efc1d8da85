"""Rendered pages, kept while their environment's generation stands.

A key carries the environment's generation (`Catalog.generation`, one small query), so a
publish in any process makes the next request render afresh; nothing is invalidated by hand
and nothing is stale. Bounded by bytes: the least recently used pages go first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from service.index.pages import Page

#: what an API keeps of rendered pages, at most
DEFAULT_BUDGET_BYTES = 64 * 1024 * 1024


class PageCache:
    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._budget = budget_bytes
        self._used = 0
        self._pages: OrderedDict[Hashable, Page] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Page | None]) -> Page | None:
        """The page under `key`, made (outside the lock) and kept when missing; None (a page
        that does not exist) is not kept."""
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
                return page
        page = make()
        if page is None or len(page.body) > self._budget:
            return page
        with self._lock:
            if key not in self._pages:
                self._pages[key] = page
                self._used += len(page.body)
            while self._used > self._budget:
                _, old = self._pages.popitem(last=False)
                self._used -= len(old.body)
        return page

    @property
    def used_bytes(self) -> int:
        return self._used
