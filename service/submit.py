"""A build request arriving at the service: answered from the store, joined, or queued.

Pure service logic (no FastAPI): the HTTP routes, webhooks and tests call `submit`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

from packaging.utils import InvalidSdistFilename, parse_sdist_filename

from service.artifacts import Artifact, lookup
from service.config import Settings
from service.dispatch import Dispatcher
from service.environments import apply_environment
from service.errors import InvalidRequestError, QueueUnavailableError, WheelwrightError
from service.jobs import JobBackend
from service.keys import environment_name, image_ref, new_build_id, request_key
from service.models import (
    ArchiveSource,
    BuildRecord,
    BuildRequest,
    DirectorySource,
    GitSource,
    Requester,
    RequirementSource,
)
from service.policy import check_request
from service.sources import resolve_source
from service.store import WheelStore

#: Where an upload is kept: by its own sha256 and a plain file name (see api/builds.py).
UPLOAD_KEY = re.compile(r"^uploads/[0-9a-f]{64}/[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$")


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


def _check(request: BuildRequest, settings: Settings) -> None:
    source = request.source
    if isinstance(source, DirectorySource):
        raise InvalidRequestError(
            "a directory source only works with the local `wheelwright build`; "
            "send the service an sdist upload, a requirement or a git URL"
        )
    if isinstance(source, ArchiveSource) and not (
        source.store_key
        and source.sha256
        and UPLOAD_KEY.match(source.store_key)
        and source.store_key.split("/")[1] == source.sha256
    ):
        raise InvalidRequestError("an archive source must be uploaded with the request")
    check_request(request, settings)
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
) -> Submitted:
    request = apply_environment(request, settings)
    _check(request, settings)
    resolved = resolve_source(request)
    image = image_ref(
        resolved.target, settings.executor, host_packages=settings.host.inherit_packages
    )
    environment = environment_name(resolved, image)
    key = request_key(resolved, image)
    hit = lookup(store, environment, key)
    if hit is not None:
        jobs.count("cache_hit")
        return Submitted(artifact=hit)
    record = BuildRecord(
        id=new_build_id(),
        request=resolved,
        request_key=key,
        environment=environment,
        queue=resolved.target.kind,
        project=project_name(resolved),
        created_at=time.time(),
        requested_by=requested_by,
    )
    record, created = jobs.create(record)
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
