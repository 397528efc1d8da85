"""The index's page cache: made once per key, bounded by bytes, no entry for a missing page."""

from __future__ import annotations

from service.index import HTML, Page
from service.index.cache import PageCache


def test_a_page_is_made_once_per_key_and_the_oldest_goes_past_the_budget() -> None:
    made: list[str] = []

    def page(name: str, size: int) -> Page:
        made.append(name)
        return Page(b"x" * size, HTML)

    cache = PageCache(budget_bytes=100)
    assert cache.get("a", lambda: page("a", 40)) is cache.get("a", lambda: page("a", 40))
    cache.get("b", lambda: page("b", 40))
    cache.get("a", lambda: page("a", 40))  # used last: "b" is the oldest now
    cache.get("c", lambda: page("c", 40))
    assert cache.used_bytes == 80
    cache.get("a", lambda: page("a", 40))
    cache.get("b", lambda: page("b", 40))
    assert made == ["a", "b", "c", "b"]
    cache.get("huge", lambda: page("huge", 101))
    cache.get("huge", lambda: page("huge", 101))
    assert made[-2:] == ["huge", "huge"]  # larger than the whole budget: never kept
    assert cache.used_bytes <= 100


def test_a_missing_page_is_not_kept() -> None:
    cache = PageCache()
    calls: list[int] = []
    for _ in range(2):
        assert cache.get("nope", lambda: calls.append(1)) is None  # type: ignore[func-returns-value]
    assert calls == [1, 1]
    assert cache.used_bytes == 0


def test_the_etag_names_the_representation() -> None:
    assert Page(b"x", HTML).etag == Page(b"x", HTML).etag
    assert Page(b"x", HTML).etag != Page(b"y", HTML).etag
    assert Page(b"x", HTML).etag != Page(b"x", "application/vnd.pypi.simple.v1+html").etag
