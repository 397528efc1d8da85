"""`/v1/projects`: a whole project built by the service, and its progress.

`POST /v1/projects` takes JSON (a git URL at a ref) or multipart (`file`: the project folder as
.tar.gz or .zip, `options`: the same JSON without `git`); the target is a named `environment`
or `target`/`python`/`cuda` as builds take them. It answers 202 with the project build's id;
the build runs in a thread of this process (`service.project.served`), its packages go to the
workers as ordinary builds. `GET /v1/projects/{id}` answers its state from the store.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from service.api.builds import UPLOAD_SUFFIXES
from service.api.public import own_url, service_url
from service.archives import Limits
from service.auth import require, token_name
from service.client import CLI_AGENT
from service.config import Settings
from service.errors import InvalidRequestError, UnsafeArchiveError, WheelwrightError
from service.gitpolicy import check_git_ref, check_git_url, git_scheme
from service.models import Requester, Target
from service.project.served import (
    GitProject,
    ServedParts,
    ServedProjectBuild,
    load_state,
    prepare_for,
    request_cancel,
    without_paths,
)

router = APIRouter(prefix="/v1/projects", tags=["projects"])
_CHUNK = 1024 * 1024


class GitOption(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    ref: str = "HEAD"


class ProjectOptions(BaseModel):
    """What a project build is asked for: the target environment, and a git source unless an
    archive is uploaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str | None = Field(default=None, description="a named environment")
    target: Literal["cpu", "cuda"] = "cpu"
    python: str = "3.11"
    cuda: str | None = None
    git: GitOption | None = None


class ProjectStarted(BaseModel):
    id: str
    state: str
    url: str


@router.post(
    "",
    status_code=202,
    dependencies=[Depends(require("build"))],
    responses={202: {"model": ProjectStarted}},
)
async def create_project(request: Request) -> JSONResponse:
    """Start a project build: JSON with `git` {url, ref}, or multipart with `file` (the
    project as .tar.gz/.zip) and `options` (JSON); 202 with its id and URL."""
    if request.headers.get("content-type", "").startswith("multipart/"):
        async with request.form() as form:  # its spooled files are closed on the way out
            found, options = form.get("file"), form.get("options", "{}")
            if not isinstance(found, UploadFile):
                raise InvalidRequestError(
                    "a multipart project build needs `file`: the project archive"
                )
            fields = _json(options if isinstance(options, str) else "", "options")
            parsed = _options(fields, uploaded=True)
            started = await run_in_threadpool(_start, request, parsed, found)
    else:
        fields = _json((await request.body()).decode("utf-8", "replace"), "the body")
        parsed = _options(fields, uploaded=False)
        started = await run_in_threadpool(_start, request, parsed, None)
    url = f"{service_url(request)}/v1/projects/{started.id}"
    body = ProjectStarted(id=started.id, state="queued", url=url)
    return JSONResponse(body.model_dump(), status_code=202, headers={"Location": url})


@router.get("/{project_build_id}", dependencies=[Depends(require("read"))])
def get_project(request: Request, project_build_id: str) -> dict[str, Any]:
    """The project build: state, each package (wave, state, stage, time), the uv configuration
    at the end, or the error; 404 for an unknown id."""
    return load_state(request.app.state.store, project_build_id)


@router.post(
    "/{project_build_id}/cancel", status_code=202, dependencies=[Depends(require("build"))]
)
def cancel_project(request: Request, project_build_id: str) -> dict[str, Any]:
    """Cancel a project build: nothing more is queued, its running builds are cancelled; 202
    with its state (it reads `cancelled` once the process running it has stopped it)."""
    return request_cancel(request.app.state.store, project_build_id)


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError as exc:
        raise InvalidRequestError(f"{what} is not JSON: {exc}") from None


def _options(fields: Any, *, uploaded: bool) -> ProjectOptions:
    if not isinstance(fields, dict):
        raise InvalidRequestError("the project build's options must be a JSON object")
    try:
        options = ProjectOptions.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidRequestError(f"bad project build request: {problems}") from None
    if uploaded == (options.git is not None):
        raise InvalidRequestError(
            "a project build takes either an uploaded archive (multipart `file`) or `git`, "
            "exactly one"
        )
    return options


def _target(options: ProjectOptions, settings: Settings) -> Target:
    if options.environment is not None:
        spec = settings.environments.get(options.environment)
        if spec is None:
            known = ", ".join(sorted(settings.environments)) or "none are configured"
            raise InvalidRequestError(
                f"unknown environment {options.environment!r} (known: {known})"
            )
        return spec.target
    try:
        return Target(kind=options.target, python=options.python, cuda=options.cuda)
    except ValueError as exc:
        raise InvalidRequestError(f"bad target: {exc}") from None


def _git(option: GitOption, settings: Settings) -> GitProject:
    try:
        url, ref = check_git_url(option.url), check_git_ref(option.ref)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    if git_scheme(url) == "file" and not settings.sources.allow_file_git:
        raise InvalidRequestError(
            f"git URL {url!r}: file:// sources are not allowed on this service"
            " (sources.allow_file_git)"
        )
    return GitProject(url, ref)


def served_parts(request: Request, requested_by: Requester | None = None) -> ServedParts:
    """The app's own store, job state and dispatcher; the index where this service reaches
    itself (`own_url`: `public_url` or its own loopback port, never the request's Host)."""
    state = request.app.state
    settings: Settings = state.settings
    agent = request.headers.get("user-agent", "")
    return ServedParts(
        settings=settings,
        store=state.store,
        jobs=state.jobs,
        dispatcher=state.dispatcher,
        base_url=own_url(request),
        refresh_index=_current,
        slots=state.project_slots,
        requested_by=requested_by
        or Requester(
            via="cli" if agent.startswith(f"{CLI_AGENT}/") else "api",
            token=token_name(settings.auth, request.headers.get("authorization")),
        ),
    )


def _current() -> None:
    """Nothing to refresh before uv asks the index: publish wrote the catalog's rows."""


def _start(
    request: Request, options: ProjectOptions, upload: UploadFile | None
) -> ServedProjectBuild:
    """Check what can be checked now (target, git URL, the archive and its project file),
    then start the build's thread; nothing is left behind when a check refuses."""
    parts = served_parts(request)
    target = _target(options, parts.settings)
    if upload is None:
        assert options.git is not None  # noqa: S101  (_options asks for one or the other)
        git = _git(options.git, parts.settings)
        return start_from_git(parts, target=target, environment=options.environment, git=git)
    workdir = _workdir(parts.settings)
    try:
        folder = _unpack(upload, workdir, parts.settings)
        try:
            prepare_for(folder, parts, target, options.environment)  # refused here, not later
        except WheelwrightError as exc:
            exc.message = without_paths(exc.message, folder, workdir)
            raise
        build = ServedProjectBuild(
            parts,
            target=target,
            environment=options.environment,
            workdir=workdir,
            source={"kind": "upload", "name": upload.filename},
            folder=folder,
        )
        build.start()
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return build


def start_from_git(
    parts: ServedParts,
    *,
    target: Target,
    environment: str | None,
    git: GitProject,
    ticket: int | None = None,
) -> ServedProjectBuild:
    """Start a project build of `git` (its URL and ref checked already); cloned in its thread.
    `ticket`: its place in the line for a slot (`ProjectSlots.join`), else it takes one now."""
    workdir = _workdir(parts.settings)
    source: dict[str, object] = {"kind": "git", "url": git.url, "ref": git.ref}
    if git.commit is not None:
        source["commit"] = git.commit
    build = ServedProjectBuild(
        parts, target=target, environment=environment, workdir=workdir, source=source, git=git
    )
    try:
        build.start(ticket=ticket)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return build


def _workdir(settings: Settings) -> Path:
    settings.home.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="project-", dir=settings.home))


def _unpack(upload: UploadFile, workdir: Path, settings: Settings) -> Path:
    from worker.unpack import unpack  # the hardened unpacker the fetch stage uses

    name = upload.filename or ""
    suffix = next((s for s in UPLOAD_SUFFIXES if name.lower().endswith(s)), None)
    if suffix is None:
        raise UnsafeArchiveError(
            f"project archive {name!r} must end in {', '.join(UPLOAD_SUFFIXES)}"
        )
    archive, size, limit = workdir / f"project{suffix}", 0, settings.limits.max_upload_bytes
    with archive.open("wb") as out:
        while chunk := upload.file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise UnsafeArchiveError(f"{name} is larger than the limit of {limit} bytes")
            out.write(chunk)
    limits = Limits(settings.max_archive_members, settings.max_archive_bytes)
    folder = unpack(archive, workdir / "project", limits)
    archive.unlink()
    return folder
