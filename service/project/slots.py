"""The project builds one API process runs at once, shared fairly between requesters.

`limits.max_project_builds` slots in all; one requester (`service.shares`) holds at most its
share of them (`limits.project_build_share`, by default half, rounded up), so a token sending slow
project builds leaves the other slots to everyone else. A project build past the limits is not
refused: it waits (`join` then `wait`), accepted, in a line of at most
`limits.max_waiting_project_builds` per requester (a token, a webhook's repository); the line is
served in order, each waiter when its requester is under its share, so a second token's build
starts while the first holds its share. Only a requester whose own line is full is answered 429.
`take` (a slot now or 429) is for callers that cannot wait.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque

from service.errors import BusyError
from service.shares import Share


class ProjectSlots:
    def __init__(self, limit: int, share: int | None = None, max_waiting: int = 8) -> None:
        self.limit = limit
        self.share = max(1, min(share or limit, limit))
        self.max_waiting = max_waiting
        self._changed = threading.Condition()
        self._held: Counter[str] = Counter()
        self._line: deque[tuple[int, Share]] = deque()
        self._tickets = itertools.count(1)

    @property
    def free(self) -> int:
        return self.limit - sum(self._held.values())

    @property
    def waiting(self) -> int:
        """Project builds in the line for a slot."""
        return len(self._line)

    def take(self, who: Share) -> None:
        """A slot for `who` now; `BusyError` (429) when `who` holds its share already, or no
        slot is free (waiting webhook builds come first)."""
        with self._changed:
            if self.free <= 0 or self._first_eligible() is not None:
                raise BusyError(
                    f"this service already runs {self.limit - self.free} project builds "
                    f"(limits.max_project_builds){self._waiting_note()}; submit again when one "
                    "has ended"
                )
            if self._held[who.key] >= self.share:
                raise BusyError(
                    f"{self._held[who.key]} project builds of {who} run already, as many as one "
                    f"requester may (limits.project_build_share: {self.share} of this "
                    f"service's {self.limit}); submit again when one has ended"
                )
            self._held[who.key] += 1

    def join(self, who: Share, count: int) -> list[int]:
        """`count` places in the line for `who`, all or none; `BusyError` when its line would
        pass `limits.max_waiting_project_builds`. Each ticket is then `wait`ed for or `leave`n."""
        with self._changed:
            waiting = sum(1 for _, w in self._line if w.key == who.key)
            if waiting + count > self.max_waiting:
                raise BusyError(
                    f"{waiting} project builds of {who} wait for a slot already; {count} more "
                    f"would pass the limit of {self.max_waiting} "
                    "(limits.max_waiting_project_builds)"
                )
            tickets = [next(self._tickets) for _ in range(count)]
            self._line.extend((ticket, who) for ticket in tickets)
            return tickets

    def wait(self, ticket: int, timeout_s: float) -> bool:
        """True once `ticket` holds a slot (it is out of the line); False after `timeout_s`
        without one (still in the line: wait again, or `leave`)."""
        end = time.monotonic() + timeout_s
        with self._changed:
            while self.free <= 0 or self._first_eligible() != ticket:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            who = self._leave(ticket)
            assert who is not None  # noqa: S101  (it was first in the line)
            self._held[who.key] += 1
            self._changed.notify_all()  # the next eligible waiter may go too
            return True

    def leave(self, ticket: int) -> None:
        """Out of the line without a slot (the build ended before it got one)."""
        with self._changed:
            self._leave(ticket)
            self._changed.notify_all()

    def give_back(self, who: Share) -> None:
        with self._changed:
            if self._held[who.key] > 0:
                self._held[who.key] -= 1
            self._changed.notify_all()

    def _first_eligible(self) -> int | None:
        """The first ticket in the line whose requester is under its share."""
        return next((t for t, w in self._line if self._held[w.key] < self.share), None)

    def _leave(self, ticket: int) -> Share | None:
        for place, (t, who) in enumerate(self._line):
            if t == ticket:
                del self._line[place]
                return who
        return None

    def _waiting_note(self) -> str:
        return f" and {len(self._line)} wait for a slot" if self._line else ""
