"""Names for what was asked: the build environment fingerprint and the request key.

Both are SHA-256 over canonical JSON (sorted keys, no whitespace), so the same request always gives
the same key on any machine. The environment decides which index page a wheel lands on; the
request key finds a stored build before any worker runs and deduplicates concurrent requests.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from packaging.requirements import Requirement

from service.errors import InvalidRequestError
from service.models import (
    ArchiveSource,
    BuildRequest,
    DirectorySource,
    GitSource,
    RequirementSource,
    Target,
)


def new_build_id() -> str:
    """A build's id: random, short enough to type, unique enough for a team's history."""
    return uuid.uuid4().hex[:16]


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest(data: Any) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


def image_ref(target: Target, executor: str = "docker", *, host_packages: bool = False) -> str:
    """The name of the image a target builds in, as keys and environments see it.

    The docker executor's default images are `wheelwright/build-cpu:py3.11` and
    `wheelwright/build-cuda:cu13.0-py3.11` (what `worker.images` builds); the host executor has
    no image and is named by its Python (`+site` when builds inherit that Python's packages).
    """
    if executor == "host":
        return f"host:python{target.python}" + ("+site" if host_packages else "")
    if target.image:
        return target.image
    if target.kind == "cuda":
        return f"wheelwright/build-cuda:cu{target.cuda}-py{target.python}"
    return f"wheelwright/build-cpu:py{target.python}"


def environment_inputs(request: BuildRequest, image: str) -> dict[str, Any]:
    """What makes two builds binary-compatible: image, Python, runtime pins, build settings."""
    return {
        "image": image,
        "target": request.target.model_dump(exclude={"image"}),
        "runtime": sorted(request.runtime),
        "build_requires": sorted(request.build_requires),
        "index": request.index.model_dump(mode="json"),
    }


def environment_name(request: BuildRequest, image: str) -> str:
    """The declared environment's name, or a readable deterministic one derived from the
    request: `cpu-py311-torch2.13.0-1a2b3c4d`."""
    if request.rebuild_of is not None:  # a scratch environment, the original's left alone
        return f"rebuild-{request.rebuild_of.request_key[:16]}"
    if request.environment:
        return request.environment
    pins = "-".join(_pin_label(pin) for pin in sorted(request.runtime))
    head = _target_label(request.target)
    short = digest(environment_inputs(request, image))[:8]
    return "-".join(part for part in (head, pins, short) if part)


def source_identity(request: BuildRequest) -> dict[str, str]:
    """The source as content, not as a path: archives by sha256, git by commit."""
    source = request.source
    match source:
        case RequirementSource():
            return _requirement_identity(source, request.index.index_url)
        case ArchiveSource(sha256=str(sha)):
            return {"archive_sha256": sha}
        case GitSource(commit=str(commit)):
            return {"git": source.url, "commit": commit, "subdirectory": source.subdirectory or ""}
        case GitSource():  # at submit: the worker resolves the ref, then keys the commit
            return {"git": source.url, "ref": source.ref, "subdirectory": source.subdirectory or ""}
        case DirectorySource(sha256=str(sha)):
            return {"tree_sha256": sha}
        case _:
            raise InvalidRequestError(
                f"the {source.kind} source must be resolved (sha256 or commit) before keying"
            )


def _requirement_identity(source: RequirementSource, index: str) -> dict[str, str]:
    """A pin on an index; a lock's sdist by its content (sha256), else by its URL."""
    if source.sha256 is not None:
        return {"requirement": source.requirement, "sdist_sha256": source.sha256}
    if source.url is not None:
        return {"requirement": source.requirement, "sdist_url": source.url}
    return {"requirement": source.requirement, "index": index}


def request_key(request: BuildRequest, image: str) -> str:
    """hash(source identity + environment + config settings + allow-listed env), the recipe
    where one applies, and the original's key for a rebuild (so it is a build of its own, never
    the original's cache hit)."""
    keyed: dict[str, Any] = {
        "source": source_identity(request),
        "environment": environment_inputs(request, image),
        "config_settings": request.config_settings,
        "build_env": request.build_env,
        "verify_imports": list(request.verify_imports or ()),
        "verify_smoke": request.verify_smoke,
        "local_label": request.local_label,
    }
    if request.recipe is not None:  # only where one applies: other keys stay as they were
        keyed["recipe"] = request.recipe.model_dump(mode="json")
    if request.rebuild_of is not None:
        keyed["rebuild_of"] = request.rebuild_of.request_key
    return digest(keyed)


def _target_label(target: Target) -> str:
    head = "cpu" if target.kind == "cpu" else f"cu{(target.cuda or '').replace('.', '')}"
    return f"{head}-py{target.python.replace('.', '')}"


def _pin_label(pin: str) -> str:
    req = Requirement(pin)
    spec = str(req.specifier).removeprefix("==")
    return re.sub(r"[^a-z0-9.]+", "", f"{req.name.lower()}{spec}")
