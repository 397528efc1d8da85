"""`/v1/builds`: submit (JSON or an uploaded sdist), follow, list and cancel builds."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import IO, Annotated, Any, BinaryIO, cast

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from service import layout
from service.api.public import own_url, service_url
from service.archives import Limits, check_archive
from service.artifacts import Artifact
from service.auth import require, token_name
from service.client import CLI_AGENT
from service.config import Settings
from service.dispatch import Dispatcher
from service.egress import EgressPolicy
from service.errors import InvalidRequestError, ObjectExistsError, UnsafeArchiveError
from service.jobs import JobBackend, settled
from service.models import (
    ArchiveSource,
    BuildRecord,
    BuildRequest,
    BuildState,
    IndexSettings,
    Requester,
    parse_request,
)
from service.policy import check_egress
from service.printable import printable
from service.store import WheelStore
from service.submit import Submitted, submit

router = APIRouter(prefix="/v1/builds", tags=["builds"])
UPLOAD_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$")
_CHUNK = 1024 * 1024


class BuildView(BaseModel):
    """A build, with where to look next."""

    build: BuildRecord
    url: str
    log_url: str
    index_url: str
    deadline_s: int = Field(description="the build's deadline: its timeout_s or the service's")


class SubmitAnswer(BaseModel):
    cached: bool
    joined: bool = False
    build: BuildView | None = None
    artifact: dict[str, Any] | None = None
    index_url: str


def _jobs(request: Request) -> JobBackend:
    jobs: JobBackend = request.app.state.jobs
    return jobs


def view(request: Request, record: BuildRecord) -> BuildView:
    base = service_url(request)
    return BuildView(
        build=record,
        url=f"{base}/v1/builds/{record.id}",
        log_url=f"{base}/v1/builds/{record.id}/log",
        index_url=f"{base}/simple/{record.environment}/",
        deadline_s=record.request.timeout_s or request.app.state.settings.build_timeout_s,
    )


def answer(request: Request, result: Submitted) -> JSONResponse:
    if result.artifact is not None:
        artifact: Artifact = result.artifact
        body = SubmitAnswer(
            cached=True,
            artifact=artifact.summary(),
            index_url=f"{service_url(request)}/simple/{artifact.environment}/",
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=200)
    assert result.record is not None  # noqa: S101  (submit returns one or the other)
    built = view(request, result.record)
    body = SubmitAnswer(
        cached=False, joined=not result.created, build=built, index_url=built.index_url
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=202, headers={"Location": built.url}
    )


def _egress(request: Request) -> EgressPolicy:
    """The operator's policy, this process's own port allowed (a request may name our index)."""
    return EgressPolicy.from_settings(request.app.state.settings, own=own_url(request))


def _submit(request: Request, build: BuildRequest) -> JSONResponse:
    state = request.app.state
    settings: Settings = state.settings
    dispatcher: Dispatcher = state.dispatcher
    agent = request.headers.get("user-agent", "")
    requested_by = Requester(
        via="cli" if agent.startswith(f"{CLI_AGENT}/") else "api",
        token=token_name(settings.auth, request.headers.get("authorization")),
    )
    check_egress(build.index, _egress(request))
    quota = settings.limits.max_builds_per_requester
    result = submit(
        build, settings, state.store, state.jobs, dispatcher, requested_by=requested_by, quota=quota
    )
    return answer(request, result)


@router.post(
    "",
    status_code=202,
    dependencies=[Depends(require("build"))],
    responses={200: {"model": SubmitAnswer}, 202: {"model": SubmitAnswer}},
)
def create_build(request: Request, build: BuildRequest) -> JSONResponse:
    """Queue a build (202), or answer from the store when it was built before (200).

    The body is a JSON build request, or multipart: `file` (an sdist or source archive) and
    `options` (the build request as JSON, without `source`).
    """
    return _submit(request, build)


@router.post(
    "/upload",
    status_code=202,
    dependencies=[Depends(require("build"))],
    responses={200: {"model": SubmitAnswer}, 202: {"model": SubmitAnswer}},
)
def create_build_from_upload(
    request: Request,
    file: Annotated[UploadFile, File(description="an sdist or source archive")],
    options: Annotated[str, Form(description="the build request as JSON, without `source`")] = "{}",
) -> JSONResponse:
    """Queue a build of an uploaded sdist or source archive."""
    try:
        fields = json.loads(options)
    except ValueError as exc:
        raise InvalidRequestError(f"options is not JSON: {exc}") from None
    if not isinstance(fields, dict) or "source" in fields:
        raise InvalidRequestError("options must be a JSON object without `source`")
    with suppress(ValidationError):  # a bad index is named by parse_request below
        check_egress(IndexSettings.model_validate(fields.get("index") or {}), _egress(request))
    settings: Settings = request.app.state.settings
    limits = Limits(settings.max_archive_members, settings.max_archive_bytes)
    source = _keep_upload(file, request.app.state.store, settings.limits.max_upload_bytes, limits)
    return _submit(request, parse_request({**fields, "source": source.model_dump()}))


def _keep_upload(file: UploadFile, store: WheelStore, limit: int, limits: Limits) -> ArchiveSource:
    name = file.filename or ""
    if not _SAFE_NAME.match(name) or not name.lower().endswith(UPLOAD_SUFFIXES):
        raise UnsafeArchiveError(
            f"upload name {name!r} must be a plain file name ending in {', '.join(UPLOAD_SUFFIXES)}"
        )
    digest, size = hashlib.sha256(), 0
    with tempfile.SpooledTemporaryFile(max_size=16 * _CHUNK) as spool:
        while chunk := file.file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise UnsafeArchiveError(f"{name} is larger than the limit of {limit} bytes")
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise UnsafeArchiveError(f"{name} is empty")
        check_archive(name, cast(IO[bytes], spool), limits)  # stored only if it unpacks safely
        spool.seek(0)
        key = layout.upload_key(digest.hexdigest(), name)
        with suppress(ObjectExistsError):  # the same bytes were uploaded before
            store.put(key, cast(BinaryIO, spool), if_absent=True)
    return ArchiveSource(path=name, sha256=digest.hexdigest(), store_key=key)


@router.get("", dependencies=[Depends(require("read"))])
def list_builds(
    request: Request,
    state: BuildState | None = None,
    project: str | None = None,
    environment: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[BuildView]:
    """Builds, newest first, filtered by state, project or environment."""
    records = _jobs(request).find(
        state=state, project=project, environment=environment, limit=limit
    )
    return [view(request, r) for r in records]


@router.get("/{build_id}", dependencies=[Depends(require("read"))])
def get_build(request: Request, build_id: str) -> BuildView:
    """State, stages with timings, the artifact and where it is served, or the error."""
    redelivery = request.app.state.settings.visibility_timeout_s
    return view(request, settled(_jobs(request), build_id, redelivery))


@router.post("/{build_id}/cancel", status_code=202, dependencies=[Depends(require("build"))])
def cancel_build(request: Request, build_id: str) -> BuildView:
    """Cancel a queued build at once, or a running one at its next poll (its container dies)."""
    return view(request, _jobs(request).cancel(build_id))


@router.get(
    "/{build_id}/log",
    dependencies=[Depends(require("read"))],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def build_log(
    request: Request,
    build_id: str,
    follow: Annotated[bool, Query(description="stream until the build ends")] = False,
) -> StreamingResponse:
    """The build's log; with `follow`, streamed while the build runs. Control characters but
    tab and newline are shown in caret notation (`^[`): a terminal that reads it gets text."""
    jobs = _jobs(request)
    jobs.get(build_id)  # 404 for an unknown build
    return StreamingResponse(
        _log_lines(
            jobs,
            request.app.state.store,
            build_id,
            follow,
            request.app.state.settings.visibility_timeout_s,
        ),
        media_type="text/plain; charset=utf-8",
    )


def _log_lines(
    jobs: JobBackend, store: WheelStore, build_id: str, follow: bool, redelivery_s: float
) -> Iterator[str]:
    cursor, seen, last = "0", False, False
    deadline = time.monotonic() + 48 * 3600
    while True:
        lines, cursor = jobs.read_log(build_id, cursor, block_ms=1000 if follow and not last else 0)
        seen = seen or bool(lines)
        yield from (printable(line) + "\n" for line in lines)
        if last or not follow or time.monotonic() > deadline:
            break
        if not lines and settled(jobs, build_id, redelivery_s).terminal:
            last = True  # one more read: lines written just before the end
    if not seen:
        key = layout.build_log_key(build_id)
        if store.exists(key):
            yield printable(store.get(key).decode("utf-8", "replace"))
