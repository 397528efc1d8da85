"""Failed tokens and logins, counted per client address: past a few a minute, 429.

A pure ASGI middleware in front of every route, so every place that compares a secret (the API's
`Authorization`, the index's basic auth, a dashboard page, the login form, a webhook's token or
signature) counts alike. A request that presents a token no configured entry matches, and a
login form or webhook answered 401, is a failure of its client address; once an address has
`auth.max_failures` failures within `auth.failure_window_s`, every request of it that presents a
secret is answered 429, with `Retry-After`, for the rest of the window, without comparing
anything: a guesser learns nothing from a refused try, right or wrong. Requests without
credentials (the anonymous index) are not held back. The count is this API process's own; the
address is the one the server sees (behind a proxy: the forwarded address, where uvicorn is told
to trust it by `FORWARDED_ALLOW_IPS`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.limits import _answer as answer_now
from service.auth import matching, presented_token
from service.config import AuthSettings

#: where a secret comes in the body or in a header of its own: a 401 there is a failure
CHECKED_HERE = ("/ui/login", "/v1/webhooks/github", "/v1/webhooks/gitlab")
#: addresses remembered at most (the oldest forgotten first): bounded under a spray of them
MAX_ADDRESSES = 10_000


class FailureWindow:
    """Failures per address within a sliding window (thread-safe)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._seen.get(address, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def wait_s(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it may now."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(address, now)
            if len(times) < self.limit:
                return None
            return max(1, math.ceil(times[-self.limit] + self.window_s - now))

    def failed(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._recent(address, now)
            times.append(now)
            while len(times) > self.limit:
                times.popleft()
            self._seen[address] = times
            self._seen.move_to_end(address)
            while len(self._seen) > MAX_ADDRESSES:
                self._seen.popitem(last=False)


class FailedAuthLimits:
    def __init__(self, app: ASGIApp, auth: AuthSettings) -> None:
        self.app = app
        self.auth = auth
        self.failures = FailureWindow(auth.max_failures, auth.failure_window_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        authorization = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"authorization"),
            None,
        )
        # on a service without tokens a token is not looked at, so it is never a wrong one
        token = presented_token(authorization) if self.auth.tokens else None
        checked_here = scope["method"] == "POST" and scope["path"].rstrip("/") in CHECKED_HERE
        if token is None and not checked_here:
            await self.app(scope, receive, send)
            return
        wait = self.failures.wait_s(address)
        if wait is not None:
            detail = (
                f"too many wrong tokens from {address}: {self.auth.max_failures} within "
                f"{self.auth.failure_window_s} s (auth.max_failures); try again in {wait} s"
            )
            await answer_now(send, 429, detail, {"retry-after": str(wait)})
            return
        if token is not None and not matching(self.auth, token):
            self.failures.failed(address)
        if not checked_here:
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.failures.failed(address)
            await send(message)

        await self.app(scope, receive, counted)
