"""A stage's output as lines: linear in what arrives, each line cut at a bound with a marker.

A build can print a gigabyte without a newline; joining chunk after chunk to a growing rest and
splitting it again would take quadratic time and unbounded memory. `LineSplitter` keeps at most
`max_chars` of the line it is in and counts what it drops.
"""

from __future__ import annotations

import codecs

DEFAULT_MAX_CHARS = 16_384


class LineSplitter:
    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed_bytes(self, chunk: bytes) -> list[str]:
        return self.feed(self._decoder.decode(chunk))

    def feed(self, text: str) -> list[str]:
        """The lines `text` completes (the unfinished rest is kept, cut at the bound)."""
        *complete, rest = text.split("\n")
        lines = []
        for piece in complete:
            self._add(piece)
            lines.append(self._take())
        self._add(rest)
        return lines

    def finish(self) -> list[str]:
        """The unfinished last line, if any."""
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._add(tail)
        return [self._take()] if self._parts or self._dropped else []

    def _add(self, piece: str) -> None:
        room = self.max_chars - self._size
        if len(piece) <= room:
            if piece:
                self._parts.append(piece)
                self._size += len(piece)
            return
        if room > 0:
            self._parts.append(piece[:room])
            self._size += room
        self._dropped += len(piece) - max(room, 0)

    def _take(self) -> str:
        line = "".join(self._parts).rstrip("\r")
        if self._dropped:
            line += f" [... line cut: {self._dropped} more characters]"
        self._parts, self._size, self._dropped = [], 0, 0
        return line
