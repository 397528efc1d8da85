"""Which container limit a failed stage hit, so the error can name it.

A build that hits a limit fails in its own words ("the build backend failed", a traceback from
a thread that could not start); the executor knows better: the engine reports an OOM kill, and
a process that may not start another sees EAGAIN.
"""

from __future__ import annotations

#: What a process sees when it may start no more processes or threads (the pids limit).
PIDS_SIGNS = (
    "Resource temporarily unavailable",
    "can't start new thread",
    "BlockingIOError: [Errno 11]",
    "fork: retry",
)


def named_limit(oom_killed: bool, log_tail: str, memory_bytes: int, pids_limit: int) -> str | None:
    """Which container limit a failed stage hit, as the error should name it; None if none."""
    if oom_killed:
        return f"the build hit the memory limit ({memory_bytes} bytes) and was killed"
    if any(sign in log_tail for sign in PIDS_SIGNS):
        return f"the build hit the process limit (pids_limit {pids_limit}: no more processes)"
    return None
