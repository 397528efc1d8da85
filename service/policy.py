"""What a request may reach on this host: the operator's allow-list, checked before queueing.

A request is data from someone else. The host paths it may name (find-links folders) are only
those the service's settings allow-list, or a folder below one; a `file://` git URL only where the
settings allow it. Checked by `submit` before anything is queued and again by the engine before a
build starts (the worker may be another machine with other settings). The indexes and find-links
URLs a request names are checked at the API's door too (`check_egress`), against the operator's
egress policy: one on this host or its networks the operator did not allow is refused, naming
it, before anything is queued (the worker's egress proxy refuses it again, whatever it resolves
to then).
"""

from __future__ import annotations

import os
from pathlib import Path

from service.config import Settings
from service.egress import EgressPolicy
from service.errors import InvalidRequestError
from service.gitpolicy import git_scheme
from service.models import BuildRequest, GitSource, IndexSettings


def allowed_folders(settings: Settings) -> tuple[Path, ...]:
    """The operator's local wheel folders: the allow-list and what the config itself names."""
    named = [Path(p) for p in settings.index.find_links if p.startswith("/")]
    for spec in settings.environments.values():
        named += [Path(p) for p in spec.index.find_links if p.startswith("/")]
    return tuple(_real(p) for p in (*settings.sources.find_links, *named))


def check_request(request: BuildRequest, settings: Settings) -> None:
    """Raise `InvalidRequestError` naming the first host path or URL the request may not use."""
    source = request.source
    local_git = isinstance(source, GitSource) and git_scheme(source.url) == "file"
    if local_git and not settings.sources.allow_file_git:
        raise InvalidRequestError(
            f"git URL {getattr(source, 'url', '')!r}: file:// sources are not allowed on this"
            " service (sources.allow_file_git)"
        )
    folders = allowed_folders(settings)
    for location in request.index.find_links:
        if location.startswith(("http://", "https://")):
            continue
        if not any(_within(_real(Path(location)), folder) for folder in folders):
            allowed = ", ".join(str(f) for f in folders) or "none are configured"
            raise InvalidRequestError(
                f"find-links {location!r} is not an allowed folder on this service"
                f" (allowed: {allowed}; the operator sets sources.find_links)"
            )


def check_egress(index: IndexSettings, egress: EgressPolicy) -> None:
    """Raise `InvalidRequestError` naming the first index or find-links URL of a request's
    `index` that `egress` (the operator's policy) refuses: an address of this host or its
    networks."""
    for url in (index.index_url, *index.extra_index_urls, *index.find_links):
        refused = egress.refusal(url)
        if refused is not None:
            raise InvalidRequestError(f"index or find-links {url!r} is refused: {refused}")


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
