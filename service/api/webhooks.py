"""`/v1/webhooks/github` and `/v1/webhooks/gitlab`: verified, replay-proof, answered at once.

The signature (GitHub: HMAC-SHA256 of the raw body; GitLab: the shared token) is checked in
constant time before the body is parsed. A delivery seen before is refused (409): by its id, and
by a digest of its body, which the signature covers while the delivery header is not, so a
captured delivery sent again under a fresh id is refused too. The builds are queued, not run:
the answer comes as soon as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, SecretStr

from service.api.projects import served_parts, start_from_git
from service.config import ProjectConfig, Settings
from service.errors import AuthError, InvalidRequestError, JobStateError
from service.gitpolicy import check_git_url
from service.models import Requester
from service.project.served import GitProject
from service.shares import share_of
from service.submit import submit
from service.webhooks import events
from service.webhooks.trigger import (
    project_files_changed,
    project_for,
    requests_for,
    wanted,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class WebhookAnswer(BaseModel):
    builds: list[str] = []
    cached: list[str] = []
    projects: list[str] = []
    ignored: str | None = None


def _secret(value: SecretStr | None, forge: str) -> bytes:
    if value is None:
        raise AuthError(f"{forge} webhooks are not enabled on this service (no secret configured)")
    return value.get_secret_value().encode()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidRequestError(f"the webhook body is not JSON: {exc}") from None


@dataclass(frozen=True)
class Delivery:
    """What makes a delivery the same one again: the forge's id and the body's digest."""

    forge: str
    id: str | None
    body_sha256: str

    @classmethod
    def of(cls, forge: str, delivery_id: str | None, body: bytes) -> Delivery:
        return cls(forge, delivery_id, hashlib.sha256(body).hexdigest())

    @property
    def name(self) -> str | None:
        """The id as builds record it (`github:<id>`), or None when the forge sent none."""
        return f"{self.forge}:{self.id}" if self.id else None


def _queue(
    request: Request, parsed: events.RefEvent | events.Ignored, delivery: Delivery
) -> JSONResponse:
    """Queue the builds of a ref event: known project and ref, first delivery only."""
    if isinstance(parsed, events.Ignored):
        return JSONResponse(WebhookAnswer(ignored=parsed.reason).model_dump(), status_code=200)
    state = request.app.state
    project = project_for(parsed, state.settings)
    if not wanted(parsed, project):
        reason = f"{parsed.kind} {parsed.name!r} is not configured to build"
        return JSONResponse(WebhookAnswer(ignored=reason).model_dump(), status_code=200)
    if project.build == "project" and not project_files_changed(parsed, project):
        reason = "the push changes neither pyproject.toml nor uv.lock: the project is as built"
        return JSONResponse(WebhookAnswer(ignored=reason).model_dump(), status_code=200)
    answer = WebhookAnswer()
    asker = Requester(via="webhook", delivery=delivery.name, repository=parsed.repository)
    if project.build == "project":
        answer.projects = start_projects(request, parsed, project, asker, delivery)
        return JSONResponse(answer.model_dump(), status_code=202)
    _first_delivery(request, delivery)
    for build in requests_for(parsed, project):
        result = submit(
            build,
            state.settings,
            state.store,
            state.jobs,
            state.dispatcher,
            requested_by=asker,
            quota=state.settings.limits.max_builds_per_requester,
        )
        if result.record is not None:
            answer.builds.append(result.record.id)
        elif result.artifact is not None:
            answer.cached.append(result.artifact.filename)
    return JSONResponse(answer.model_dump(), status_code=202)


def _first_delivery(request: Request, delivery: Delivery) -> None:
    """Refuse a delivery seen within the replay window (`JobStateError`, 409): the same id, or
    the same body under another id (a captured delivery replayed; the id is not signed)."""
    state = request.app.state
    window = state.settings.webhooks.replay_window_s
    if delivery.name is not None and not state.jobs.first_time(delivery.name, window):
        raise JobStateError(
            f"delivery {delivery.name!r} was received before; not building it twice"
        )
    body = f"{delivery.forge}:sha256:{delivery.body_sha256}"
    if not state.jobs.first_time(body, window):
        raise JobStateError(
            f"delivery {delivery.name or '(no id)'} has the body of one received before "
            f"(sha256 {delivery.body_sha256[:16]}…): a replay under a new id; not building it twice"
        )


def start_projects(
    request: Request,
    event: events.RefEvent,
    project: ProjectConfig,
    asker: Requester,
    delivery: Delivery,
) -> list[str]:
    """One project build of the pushed commit per configured environment; their ids.

    All or none: every environment is checked and each build given its place in the line for
    a slot (`ProjectSlots.join`) before the delivery counts as received; a busy service keeps
    them waiting (the forge does not send a delivery again by itself). Only a repository whose
    line is full is answered 429, and its delivery does not count as received."""
    parts = served_parts(request, asker)
    url = project.url or event.clone_url
    try:
        check_git_url(url)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    git = GitProject(url, event.name, commit=event.commit, subdirectory=project.subdirectory)
    targets = {}
    for environment in project.environments:
        spec = parts.settings.environments.get(environment)
        if spec is None:
            raise InvalidRequestError(
                f"project {project.repository!r} names unknown environment {environment!r}"
            )
        targets[environment] = spec.target
    slots = parts.slots
    tickets: list[int | None] = [None] * len(targets)
    if slots is not None:
        tickets = list(slots.join(share_of(asker), len(targets)))
    started: list[str] = []
    try:
        _first_delivery(request, delivery)
        for (environment, target), ticket in zip(targets.items(), tickets, strict=True):
            build = start_from_git(
                parts, target=target, environment=environment, git=git, ticket=ticket
            )
            started.append(build.id)  # the build's thread owns its ticket now
        return started
    finally:
        if slots is not None:
            for ticket in tickets[len(started) :]:
                if ticket is not None:
                    slots.leave(ticket)


@router.post("/github", status_code=202, responses={200: {"model": WebhookAnswer}})
async def github(request: Request) -> JSONResponse:
    """GitHub `push`, `release` and `ping` events (content type application/json)."""
    settings: Settings = request.app.state.settings
    body = await request.body()
    secret = _secret(settings.webhooks.github_secret, "GitHub")
    offered = request.headers.get("x-hub-signature-256", "")
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(offered.encode(), expected.encode()):
        raise AuthError("X-Hub-Signature-256 is missing or does not match the body")
    delivery = request.headers.get("x-github-delivery")
    if not delivery:
        raise InvalidRequestError("X-GitHub-Delivery is missing")
    parsed = events.github(request.headers.get("x-github-event", ""), _json(body))
    return _queue(request, parsed, Delivery.of("github", delivery, body))


@router.post("/gitlab", status_code=202, responses={200: {"model": WebhookAnswer}})
async def gitlab(request: Request) -> JSONResponse:
    """GitLab `Push Hook` and `Tag Push Hook` events."""
    settings: Settings = request.app.state.settings
    secret = _secret(settings.webhooks.gitlab_token, "GitLab")
    offered = request.headers.get("x-gitlab-token", "").encode()
    if not hmac.compare_digest(hashlib.sha256(offered).digest(), hashlib.sha256(secret).digest()):
        raise AuthError("X-Gitlab-Token is missing or wrong")
    body = await request.body()
    parsed = events.gitlab(request.headers.get("x-gitlab-event", ""), _json(body))
    delivery = request.headers.get("idempotency-key") or request.headers.get("x-gitlab-event-uuid")
    return _queue(request, parsed, Delivery.of("gitlab", delivery, body))
