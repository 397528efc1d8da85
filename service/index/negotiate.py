"""Content negotiation for the simple API (PEP 691): pick a page format from `Accept`."""

from __future__ import annotations

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML = "text/html"

#: Ties (same quality, same specificity) go to the first; `*/*` alone gets plain HTML.
SERVER_ORDER = (HTML, JSON_V1, HTML_V1)
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}


def choose_media_type(accept: str | None) -> str | None:
    """The best format for an `Accept` header, or None when nothing offered is acceptable.

    No header, or an empty one, means HTML. Each offered type takes the quality of the most
    specific range that matches it (`type/subtype` over `type/*` over `*/*`); q=0 refuses it.
    """
    if accept is None or not accept.strip():
        return HTML
    ranges = _parse(accept)
    best: tuple[float, int, int] | None = None
    chosen = None
    for order, media in enumerate(SERVER_ORDER):
        quality, specificity = _quality(media, ranges)
        rank = (quality, specificity, -order)
        if quality > 0 and (best is None or rank > best):
            best, chosen = rank, media
    return chosen


def _parse(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        if "/" not in media:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    quality = -1.0
        if quality >= 0:
            ranges.append((_ALIASES.get(media, media), quality))
    return ranges


def _quality(media: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    kind = media.split("/", 1)[0]
    found: dict[int, float] = {}
    for pattern, quality in ranges:
        if pattern == media:
            specificity = 3
        elif pattern == f"{kind}/*":
            specificity = 2
        elif pattern == "*/*":
            specificity = 1
        else:
            continue
        found[specificity] = max(found.get(specificity, 0.0), quality)
    if not found:
        return 0.0, 0
    specificity = max(found)
    return found[specificity], specificity
