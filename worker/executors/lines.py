"""A stage's output as lines: linear in what arrives, each line cut at a bound with a marker.

A build can print a gigabyte without a newline; joining chunk after chunk to a growing rest and
splitting it again would take quadratic time and unbounded memory. `LineSplitter` keeps at most
`max_chars` of the line it is in and counts what it drops. A line ends at `\n`, `\r\n` or a lone
`\r` (a progress bar's redraw): a carriage return never reaches a reader's terminal inside a line,
and the text of each redraw stays (`service.printable` shows what other controls a line holds).
"""

from __future__ import annotations

import codecs
import re

DEFAULT_MAX_CHARS = 16_384
_BREAK = re.compile(r"\r\n|\r|\n")


class LineSplitter:
    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._after_cr = False  # the last piece ended at `\r`: a `\n` next belongs to it

    def feed_bytes(self, chunk: bytes) -> list[str]:
        return self.feed(self._decoder.decode(chunk))

    def feed(self, text: str) -> list[str]:
        """The lines `text` completes (the unfinished rest is kept, cut at the bound)."""
        if self._after_cr and text.startswith("\n"):
            text, self._after_cr = text[1:], False
        if text:
            self._after_cr = text.endswith("\r")
        *complete, rest = _BREAK.split(text)
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
        line = "".join(self._parts)
        if self._dropped:
            line += f" [... line cut: {self._dropped} more characters]"
        self._parts, self._size, self._dropped = [], 0, 0
        return line
