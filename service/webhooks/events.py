"""What a forge's webhook says, reduced to what builds need. Pure: no I/O, no secrets.

GitHub: `ping`, `push` (branches and tags), `release` (published). GitLab: `Push Hook` and
`Tag Push Hook`. Anything else, or a push that deletes a ref, is ignored (no build).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from service.errors import InvalidRequestError

ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class RefEvent:
    """A branch or tag of a repository at a commit (None: resolve the tag when building)."""

    repository: str
    clone_url: str
    kind: Literal["branch", "tag"]
    name: str
    commit: str | None
    #: the paths the push added, changed or removed; None when the event does not say (a tag,
    #: a release, a push of more commits than the forge lists)
    changed: frozenset[str] | None = None

    def touches(self, *paths: str) -> bool:
        """Whether the push may have changed one of `paths` (yes, when it does not say)."""
        return self.changed is None or any(path in self.changed for path in paths)


@dataclass(frozen=True)
class Ignored:
    reason: str


def _field(payload: Any, *path: str) -> str:
    value = payload
    for part in path:
        if not isinstance(value, dict) or part not in value:
            raise InvalidRequestError(f"the webhook body has no {'.'.join(path)}")
        value = value[part]
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"the webhook body's {'.'.join(path)} is not a string")
    return value


def _ref(ref: str) -> tuple[Literal["branch", "tag"], str]:
    if ref.startswith("refs/heads/"):
        return "branch", ref.removeprefix("refs/heads/")
    if ref.startswith("refs/tags/"):
        return "tag", ref.removeprefix("refs/tags/")
    raise InvalidRequestError(f"ref {ref!r} is neither a branch nor a tag")


#: GitHub lists at most this many commits of a push; a longer push's changes are unknown.
GITHUB_MAX_COMMITS = 20


def changed_paths(payload: Any, *, listed_all: bool) -> frozenset[str] | None:
    """The files a push's commits added, modified or removed, where the forge lists them all."""
    commits = payload.get("commits") if isinstance(payload, dict) else None
    if not isinstance(commits, list) or not listed_all:
        return None
    paths: set[str] = set()
    for commit in commits:
        if not isinstance(commit, dict):
            return None
        for key in ("added", "modified", "removed"):
            files = commit.get(key, [])
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                return None
            paths.update(files)
    return frozenset(paths)


def github(event: str, payload: Any) -> RefEvent | Ignored:
    if event == "ping":
        return Ignored("ping: the webhook is set up")
    if event == "push":
        after = _field(payload, "after")
        if after == ZERO_SHA or payload.get("deleted") is True:
            return Ignored("a deleted ref builds nothing")
        kind, name = _ref(_field(payload, "ref"))
        return RefEvent(
            repository=_field(payload, "repository", "full_name"),
            clone_url=_field(payload, "repository", "clone_url"),
            kind=kind,
            name=name,
            commit=after,
            changed=changed_paths(
                payload,
                listed_all=kind == "branch"
                and len(payload.get("commits") or []) < GITHUB_MAX_COMMITS
                and payload.get("before", ZERO_SHA) != ZERO_SHA,
            ),
        )
    if event == "release":
        if payload.get("action") != "published":
            return Ignored(f"release {payload.get('action')!r} builds nothing")
        return RefEvent(
            repository=_field(payload, "repository", "full_name"),
            clone_url=_field(payload, "repository", "clone_url"),
            kind="tag",
            name=_field(payload, "release", "tag_name"),
            commit=None,
        )
    return Ignored(f"event {event!r} builds nothing")


def gitlab(event: str, payload: Any) -> RefEvent | Ignored:
    if event not in ("Push Hook", "Tag Push Hook"):
        return Ignored(f"event {event!r} builds nothing")
    after = _field(payload, "after")
    commit = payload.get("checkout_sha") or after
    if after == ZERO_SHA or not commit:
        return Ignored("a deleted ref builds nothing")
    kind, name = _ref(_field(payload, "ref"))
    return RefEvent(
        repository=_field(payload, "project", "path_with_namespace"),
        clone_url=_field(payload, "project", "git_http_url"),
        kind=kind,
        name=name,
        commit=str(commit),
        changed=changed_paths(
            payload,
            listed_all=kind == "branch"
            and payload.get("total_commits_count") == len(payload.get("commits") or [])
            and payload.get("before", ZERO_SHA) != ZERO_SHA,
        ),
    )
