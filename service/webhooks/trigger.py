"""From a ref event to build requests: the configured project, its refs, its environments."""

from __future__ import annotations

import fnmatch

from service.config import ProjectConfig, Settings
from service.errors import UnknownProjectError
from service.models import BuildRequest, parse_request
from service.webhooks.events import RefEvent


def project_for(event: RefEvent, settings: Settings) -> ProjectConfig:
    for project in settings.projects:
        if project.repository.lower() == event.repository.lower():
            return project
    raise UnknownProjectError(f"no project is configured for repository {event.repository!r}")


def wanted(event: RefEvent, project: ProjectConfig) -> bool:
    patterns = project.branches if event.kind == "branch" else project.tags
    return any(fnmatch.fnmatchcase(event.name, pattern) for pattern in patterns)


PROJECT_FILES = ("pyproject.toml", "uv.lock")


def project_files_changed(event: RefEvent, project: ProjectConfig) -> bool:
    """Whether the push may have touched the project's pyproject.toml or uv.lock (in its
    subdirectory); yes where the event does not say what changed."""
    folder = (project.subdirectory or "").strip("/")
    return event.touches(*(f"{folder}/{name}" if folder else name for name in PROJECT_FILES))


def requests_for(event: RefEvent, project: ProjectConfig) -> list[BuildRequest]:
    """One build per configured environment, of the pushed commit (or the tag)."""
    source = {
        "kind": "git",
        "url": project.url or event.clone_url,
        "ref": event.name,
        "commit": event.commit,
        "subdirectory": project.subdirectory,
    }
    return [
        parse_request({"source": source, "environment": environment})
        for environment in project.environments
    ]
