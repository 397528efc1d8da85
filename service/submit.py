"""A build request arriving at the service: answered from the store, joined, or queued.

Pure service logic (no FastAPI): the HTTP routes, webhooks and tests call `submit`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import PurePosixPath

from packaging.utils import InvalidSdistFilename, parse_sdist_filename

from service.artifacts import Artifact, lookup
from service.config import Settings
from service.dispatch import Dispatcher
from service.errors import InvalidRequestError, QueueUnavailableError, WheelwrightError
from service.index.sql import open_catalog
from service.jobs import JobBackend
from service.keys import new_build_id
from service.layout import is_upload_of
from service.models import (
    ArchiveSource,
    BuildRecord,
    BuildRequest,
    DirectorySource,
    GitSource,
    Requester,
    RequirementSource,
)
from service.prepare import prepare
from service.queues import queue_for
from service.store import WheelStore


@dataclass(frozen=True)
class Submitted:
    """Either a stored artifact (a cache hit) or the build that will make it."""

    artifact: Artifact | None = None
    record: BuildRecord | None = None
    created: bool = False


def project_name(request: BuildRequest) -> str:
    source = request.source
    match source:
        case RequirementSource():
            return source.name
        case ArchiveSource():
            try:
                return str(parse_sdist_filename(PurePosixPath(source.path).name)[0])
            except InvalidSdistFilename:  # a source archive, not an sdist: its name will do
                name = PurePosixPath(source.path).name.lower()
                return name.removesuffix(".zip").removesuffix(".tgz").split(".tar")[0]
        case GitSource():
            return PurePosixPath(source.url.rstrip("/")).name.removesuffix(".git").lower()
    return ""


def _check_source(request: BuildRequest) -> None:
    source = request.source
    if isinstance(source, DirectorySource):
        raise InvalidRequestError(
            "a directory source only works with the local `wheelwright build`; "
            "send the service an sdist upload, a requirement or a git URL"
        )
    if isinstance(source, ArchiveSource) and not (
        source.store_key and source.sha256 and is_upload_of(source.store_key, source.sha256)
    ):
        raise InvalidRequestError("an archive source must be uploaded with the request")


def _check_timeout(request: BuildRequest, settings: Settings) -> None:
    if request.timeout_s is not None and request.timeout_s > settings.build_timeout_s:
        raise InvalidRequestError(
            f"timeout_s {request.timeout_s} is above this service's limit of"
            f" {settings.build_timeout_s} seconds"
        )


def submit(
    request: BuildRequest,
    settings: Settings,
    store: WheelStore,
    jobs: JobBackend,
    dispatcher: Dispatcher,
    *,
    requested_by: Requester | None = None,
    quota: int | None = None,
) -> Submitted:
    """Answer `request` from the store, join the live build of its key, or queue a new one.
    With `quota`, a new build counts against its requester's `limits.max_builds_per_requester`
    (`BusyError` past it); a project build's own packages are bounded by the project's share of
    slots and `limits.max_project_packages` instead."""
    _check_source(request)
    prepared = prepare(request, settings)  # once: the record carries it to the worker
    _check_timeout(prepared.request, settings)
    hit = lookup(store, prepared.environment, prepared.key)
    if hit is not None:
        open_catalog(settings).record(hit)  # a publish that died before its row: listed now
        jobs.count("cache_hit")
        return Submitted(artifact=hit)
    record = BuildRecord(
        id=new_build_id(),
        request=prepared.request,
        request_key=prepared.key,
        environment=prepared.environment,
        image=prepared.image,
        queue=queue_for(prepared.request.target),
        project=project_name(prepared.request),
        created_at=time.time(),
        requested_by=requested_by,
    )
    record, created = jobs.create(record, limit=quota)
    if created:
        jobs.count("cache_miss")
        try:
            dispatcher.submit(record)
        except Exception as exc:
            jobs.finish(record.id, "failed", error=f"could not be queued: {exc}")
            if isinstance(exc, WheelwrightError):
                raise
            raise QueueUnavailableError(f"the build could not be queued: {exc}") from None
    return Submitted(record=record, created=created)
