"""Whose share a request uses: many teams share one service, and no one of them takes it all.

A share belongs to a requester: the API token's name (every request with that token), a
webhook's repository (every delivery of that forge repository: a webhook is never a token's), or,
on a service without tokens, everyone who calls the API (there is nobody to tell apart). Each
requester may hold at most `limits.max_builds_per_requester` builds queued or running at once
(`JobBackend.create`), and at most its share of the project-build slots (`ProjectSlots`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.config import LimitSettings
from service.errors import BusyError
from service.models import Requester


@dataclass(frozen=True)
class Share:
    key: str  # what counts are kept under (`token:ci`, `repository:acme/app`, `anonymous`)
    label: str  # how an answer names it

    def __str__(self) -> str:
        return self.label


ANONYMOUS = Share("anonymous", "callers without a token")


def share_of(requester: Requester | None) -> Share:
    """The share `requester` counts against."""
    if requester is None:
        return ANONYMOUS
    if requester.via == "webhook" and requester.repository:
        return Share(f"repository:{requester.repository}", f"repository {requester.repository!r}")
    if requester.token:
        return Share(f"token:{requester.token}", f"token {requester.token!r}")
    return ANONYMOUS


def project_share(limits: LimitSettings) -> int:
    """Project builds one requester may run at once: `limits.project_build_share`, by default
    half of `limits.max_project_builds` rounded up (at least 1), so no one takes every slot."""
    configured = limits.project_build_share
    share = configured if configured is not None else math.ceil(limits.max_project_builds / 2)
    return max(1, min(share, limits.max_project_builds))


def over_quota(who: Share, held: int, limit: int) -> BusyError:
    """The refusal of a build past `who`'s `limits.max_builds_per_requester` (429)."""
    return BusyError(
        f"{held} builds of {who} are queued or running already, as many as one requester may "
        f"(limits.max_builds_per_requester = {limit}); submit again when one has ended"
    )
