"""Build output made safe for a terminal, visibly: the one place control characters are named.

A build prints what its package's code wants: an OSC 52 clipboard write, cursor movements that
erase the lines above, a window title. Shown raw, those reach whoever reads the log in a
terminal (`wheelwright submit --wait`, `build`'s failure tail, `curl .../log`, `cat` of a stored
log). `printable` keeps the text and shows every control character except tab and newline in
caret notation, as `cat -v` does: ESC is `^[`, a carriage return `^M`, DEL `^?`; a C1 control
(U+0080 to U+009F, which some terminals take as ESC plus a letter) is `<U+009B>`. It is
idempotent: what it returns contains nothing it would change again.

Line ends: a stage's output is split into lines at `\\n`, `\\r\\n` and a lone `\\r` (a progress
bar's redraw becomes its own line; see `worker.executors.lines`), so a `^M` only shows a
carriage return in text that never went through the splitter.
"""

from __future__ import annotations

import re

_CARETS = {code: f"^{chr(code + 0x40)}" for code in range(0x20) if code not in (0x09, 0x0A)}
_TABLE: dict[int, str] = _CARETS | {0x7F: "^?"} | {c: f"<U+{c:04X}>" for c in range(0x80, 0xA0)}
#: an SGR (colour, bold) sequence as `printable` shows it: what the dashboard leaves out
_COLOUR = re.compile(r"\^\[\[[0-9;:]*m")


def printable(text: str) -> str:
    """`text` with every control character but tab and newline shown in caret notation."""
    return text.translate(_TABLE)


def without_colour(text: str) -> str:
    """`printable(text)`, less its colour sequences: for a page, where colour says nothing and
    `^[[32m` would only be noise (cursor moves, titles and the rest stay visible)."""
    return _COLOUR.sub("", printable(text))
