"""A project build's progress as a CI log shows it: with no terminal, one line per change of a
package's state or stage (`torch-scatter 2.1.2  running  build  312 s`), and at the end one
line per package whose names are never cut. Plain text, every field made printable (what a
package says never steers the log's viewer); a terminal gets the live table instead."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

from service.printable import printable
from service.project.run import DONE, ProjectProgress

#: between the fields of a line: two spaces, so that a name with one reads as one field
GAP = "  "


def progress_line(node: Mapping[str, Any]) -> str:
    """`name version  state  stage  seconds s`, the stage and time where there are any; a
    failed package's error after its state. `node`: a package as the JSON answer has it."""
    state = str(node.get("state"))
    fields = [f"{node.get('name')} {node.get('version')}", state]
    if node.get("stage") and state == "running":
        fields.append(str(node["stage"]))
    seconds = node.get("seconds")
    if isinstance(seconds, (int, float)) and state not in ("waiting", "queued"):
        fields.append(f"{seconds:.0f} s")
    if node.get("error"):
        fields.append(str(node["error"]))
    elif node.get("note") and state == "cached":
        fields.append(str(node["note"]))
    return GAP.join(printable(field) for field in fields)


class ProgressLines:
    """Writes a line to `out` for each package whose (state, stage) changed since the last
    `update`; `clock` gives the seconds the lines show."""

    def __init__(self, out: TextIO | None = None, clock: Callable[[], float] | None = None) -> None:
        self._out = out or sys.stderr
        self._clock = clock or time.monotonic
        self._seen: dict[str, tuple[object, object]] = {}

    def update(self, progress: ProjectProgress) -> None:
        self.update_rows(progress.as_json(self._clock()))

    def update_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """The same for packages as the JSON answer has them (`wheelwright project submit`)."""
        for row in rows:
            state = row.get("state")
            key = (state, row.get("stage") if state == "running" else None)
            if self._seen.get(str(row.get("name"))) == key:
                continue
            self._seen[str(row.get("name"))] = key
            self._out.write(progress_line(row) + "\n")
        self._out.flush()

    def summary(self, progress: ProjectProgress) -> None:
        self.summary_rows(progress.as_json(self._clock()))

    def summary_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Every package, one line each, its name and version whole: where it ended."""
        rows = list(rows)
        if not rows:
            return
        self._out.write("summary:\n")
        for row in rows:
            line = progress_line(row)
            wheel = row.get("wheel") if row.get("state") in DONE else None
            self._out.write(f"  {line}{GAP}{printable(str(wheel))}\n" if wheel else f"  {line}\n")
        self._out.flush()
