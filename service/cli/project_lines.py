"""A project build's progress as a CI log shows it: with no terminal, one line per change of a
package's state or stage (`torch-scatter 2.1.2  running  build  312 s`), and at the end one
line per package whose names are never cut. Plain text, every field made printable (what a
package says never steers the log's viewer); a terminal gets the live table instead."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from service.printable import printable
from service.project.run import NodeProgress, ProjectProgress

#: between the fields of a line: two spaces, so that a name with one reads as one field
GAP = "  "


def progress_line(node: NodeProgress, now: float) -> str:
    """`name version  state  stage  seconds s`, the stage and time where there are any; a
    failed package's error after its state."""
    fields = [f"{node.name} {node.version}", node.state]
    if node.stage and node.state == "running":
        fields.append(node.stage)
    seconds = node.seconds(now)
    if seconds is not None and node.state not in ("waiting", "queued"):
        fields.append(f"{seconds:.0f} s")
    if node.error:
        fields.append(node.error)
    elif node.note and node.state == "cached":
        fields.append(node.note)
    return GAP.join(printable(field) for field in fields)


class ProgressLines:
    """Writes a line to `out` for each package whose (state, stage) changed since the last
    `update`; `clock` gives the seconds the lines show."""

    def __init__(self, out: TextIO | None = None, clock: Callable[[], float] | None = None) -> None:
        self._out = out or sys.stderr
        self._clock = clock or time.monotonic
        self._seen: dict[str, tuple[str, str | None]] = {}

    def update(self, progress: ProjectProgress) -> None:
        now = self._clock()
        for node in list(progress.nodes.values()):
            key = (node.state, node.stage if node.state == "running" else None)
            if self._seen.get(node.name) == key:
                continue
            self._seen[node.name] = key
            self._out.write(progress_line(node, now) + "\n")
        self._out.flush()

    def summary(self, progress: ProjectProgress) -> None:
        """Every package, one line each, its name and version whole: where it ended."""
        if not progress.nodes:
            return
        now = self._clock()
        self._out.write("summary:\n")
        for node in progress.nodes.values():
            detail = node.wheel if node.ok and node.wheel else None
            line = progress_line(node, now)
            self._out.write(f"  {line}{GAP}{printable(detail)}\n" if detail else f"  {line}\n")
        self._out.flush()
