"""A build log, a page at a time: never the whole log in one response.

A finished build's log lies in the store (`logs/builds/<id>.log`): it is read by byte ranges of at
most `PAGE_BYTES`, cut at line ends, newest page first. A running build's log is the job backend's
stream: its last `TAIL_LINES` lines, then whatever follows a cursor. Lines are shown as text:
colour is left out, other control characters shown as `service.printable` shows them everywhere
(`^[`), a carriage-return redraw of an older log keeps its last state, and a line longer than
`LINE_CHARS` is cut with a note of how much was left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

from service.errors import ObjectNotFoundError
from service.jobs import JobBackend
from service.layout import build_log_key
from service.printable import without_colour
from service.store import WheelStore

PAGE_BYTES = 128 * 1024
TAIL_LINES = 400
LINE_CHARS = 2000


@dataclass(frozen=True)
class LogLine:
    text: str
    kind: str  # "stage" (a stage starts or ends), "error", or "" (output)


@dataclass(frozen=True)
class LogPage:
    """Lines of one page; `start`/`end` are byte offsets in the stored log (None when live)."""

    lines: list[LogLine]
    start: int | None = None
    end: int | None = None
    size: int | None = None
    cursor: str | None = None  # where a live log reads on

    @property
    def earlier(self) -> int | None:
        return max(0, self.start - PAGE_BYTES) if self.start else None

    @property
    def later(self) -> int | None:
        return self.end if self.end is not None and self.size and self.end < self.size else None


def clean(raw: str) -> LogLine:
    """One line as shown: colour left out, controls visible, the last redraw of a `\\r` line,
    length capped."""
    text = raw.rstrip("\r\n")
    if "\r" in text:
        text = text.rsplit("\r", 1)[-1]
    text = without_colour(text)
    if len(text) > LINE_CHARS:
        text = f"{text[:LINE_CHARS]} … ({len(text) - LINE_CHARS} more characters)"
    if text.startswith(("===>", "<===")):
        kind = "stage" if "FAILED" not in text else "error"
    elif text.startswith("!!"):
        kind = "error"
    else:
        kind = ""
    return LogLine(text, kind)


def _read_range(stream: BinaryIO, start: int, length: int) -> bytes:
    if stream.seekable():
        stream.seek(start)
        return stream.read(length)
    remaining = start
    while remaining > 0:  # a plain stream (S3): skip forward without keeping what is skipped
        skipped = stream.read(min(remaining, 1024 * 1024))
        if not skipped:
            return b""
        remaining -= len(skipped)
    return stream.read(length)


def stored_page(store: WheelStore, key: str, offset: int | None, until: int | None) -> LogPage:
    """The page of the stored log at byte `offset` (None: the last page), up to `until`.

    Raises `ObjectNotFoundError` when the store has no such log.
    """
    with store.open(key) as stream:
        # a file knows its size; an object store says it in a HEAD (a file's head would hash it)
        size = stream.seek(0, os.SEEK_END) if stream.seekable() else store.head(key).size
        start = max(0, size - PAGE_BYTES) if offset is None else min(max(0, offset), size)
        stop = max(start, min(size, start + PAGE_BYTES, until if until is not None else size))
        head = 1 if start > 0 else 0  # one byte before: is `start` at a line start?
        data = _read_range(stream, start - head, stop - start + head)
    if head:
        if data[:1] != b"\n":
            cut = data.find(b"\n")
            skip = cut + 1 if cut >= 0 else len(data)
            data, start = data[skip:], start - head + skip
        else:
            data = data[1:]
    if stop < size and b"\n" in data:
        keep = data.rfind(b"\n") + 1
        stop -= len(data) - keep
        data = data[:keep]
    text = data.decode("utf-8", "replace")
    lines = [clean(line) for line in text.split("\n")]
    if lines and not lines[-1].text and text.endswith("\n"):
        lines.pop()
    return LogPage(lines, start=start, end=stop, size=size)


def live_tail(jobs: JobBackend, build_id: str) -> LogPage:
    lines, cursor = jobs.log_tail(build_id, TAIL_LINES)
    return LogPage([clean(line) for line in lines], cursor=cursor)


def live_after(jobs: JobBackend, build_id: str, cursor: str) -> LogPage:
    """Lines after `cursor` (at most `TAIL_LINES`: a reader far behind skips ahead)."""
    lines, cursor = jobs.read_log(build_id, cursor)
    return LogPage([clean(line) for line in lines[-TAIL_LINES:]], cursor=cursor)


def build_log(
    store: WheelStore, jobs: JobBackend, build_id: str, offset: int | None, until: int | None
) -> LogPage:
    """The stored log's page when the store has it, else the live tail."""
    try:
        return stored_page(store, build_log_key(build_id), offset, until)
    except ObjectNotFoundError:
        return live_tail(jobs, build_id)
