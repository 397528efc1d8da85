"""A rebuild of a published wheel (`wheelwright verify --rebuild`): the provenance's inputs built
again, compiler cache off, into a scratch environment; the worker compares the bytes it got
with the original's and records the result beside the original (`layout.rebuild_key`), where
its dashboard page and `GET /v1/provenance/<environment>/<request_key>/rebuilds` show it."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from service import layout
from service.artifacts.publish import lookup
from service.artifacts.record import Artifact
from service.errors import InvalidArtifactError, ObjectNotFoundError
from service.models import BuildRequest, RebuildOf
from service.store import WheelStore

REPRODUCED, DIFFERS = "reproduced", "differs"
MAX_RECORDS = 100


def rebuild_request(statement: Mapping[str, Any]) -> dict[str, Any]:
    """The request of a rebuild, from a verified statement: its inputs as the original build
    had them (its named environment already applied), the compiler cache off."""
    external = statement["predicate"]["buildDefinition"]["externalParameters"]
    request = {k: v for k, v in dict(external["request"]).items() if k != "environment"}
    source = dict(request["source"])
    if source.get("kind") == "archive" and source.get("sha256") and not source.get("store_key"):
        # the upload the original was built from, where the service keeps it
        source["store_key"] = layout.upload_key(str(source["sha256"]), str(source["path"]))
    request["source"] = source
    request["compiler_cache"] = False
    request["rebuild_of"] = {
        "environment": external["environment"],
        "request_key": external["request_key"],
    }
    return request


def record_rebuild(
    store: WheelStore, request: BuildRequest, rebuilt: Artifact, build_id: str
) -> dict[str, Any] | None:
    """Compare the rebuilt wheel with the original and keep the result; None when this is no
    rebuild, or the original is gone."""
    of = request.rebuild_of
    if of is None:
        return None
    original = lookup(store, of.environment, of.request_key)
    if original is None:
        return None
    differing = [] if original.sha256 == rebuilt.sha256 else _differing(store, original, rebuilt)
    record = {
        "build_id": build_id,
        "result": REPRODUCED if original.sha256 == rebuilt.sha256 else DIFFERS,
        "original_sha256": original.sha256,
        "sha256": rebuilt.sha256,
        "filename": rebuilt.filename,
        "environment": rebuilt.environment,
        "differing": differing,
        "compiler_cache": request.compiler_cache,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    body = json.dumps(record, indent=1, sort_keys=True).encode() + b"\n"
    store.put(layout.rebuild_key(of.environment, of.request_key, build_id), body)
    return record


def rebuilds(store: WheelStore, of: RebuildOf) -> list[dict[str, Any]]:
    """The recorded rebuilds of one published build, newest first."""
    found = []
    listed = list(store.list(layout.rebuilds_prefix(of.environment, of.request_key)))
    for obj in listed[-MAX_RECORDS:]:
        try:
            document = json.loads(store.get(obj.key))
        except (ObjectNotFoundError, ValueError):
            continue
        if isinstance(document, dict):
            found.append(document)
    return sorted(found, key=lambda r: str(r.get("recorded_at")), reverse=True)


def _differing(store: WheelStore, original: Artifact, rebuilt: Artifact) -> list[str]:
    """The members whose bytes differ, or that only one of the wheels holds."""
    left, right = _members(store, original), _members(store, rebuilt)
    return sorted(n for n in left.keys() | right.keys() if left.get(n) != right.get(n))


def _members(store: WheelStore, artifact: Artifact) -> dict[str, str]:
    try:
        with zipfile.ZipFile(io.BytesIO(store.get(artifact.wheel_key))) as archive:
            return {
                info.filename: hashlib.sha256(archive.read(info)).hexdigest()
                for info in archive.infolist()
            }
    except zipfile.BadZipFile as exc:
        raise InvalidArtifactError(f"{artifact.wheel_key}: {exc}") from None
