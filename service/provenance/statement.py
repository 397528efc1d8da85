"""The in-toto Statement (v1) of one published wheel, with a SLSA Provenance (v1) predicate.

- subject: the wheel (its filename, its sha256);
- buildDefinition.externalParameters: the request as the caller sent it (pinned: a git ref
  resolved to its commit), the environment and the request key;
- buildDefinition.internalParameters: what the service chose: the image, Python, the runtime
  and build freezes, the build environment, the toolchain, the ABI pins, SOURCE_DATE_EPOCH;
- buildDefinition.resolvedDependencies: the source (sdist sha256 or git commit) and the image;
- runDetails: the builder (the service's public URL, its version), the build id and times, and
  the SBOM written into the wheel as a byproduct.

The documents are plain JSON; `check_statement` parses them into the in-toto-attestation
library's messages and runs its validation, so what we write and what we accept follow its schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import STATEMENT_TYPE_URI, Statement

from service.errors import ProvenanceError

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
#: What a wheelwright build is, for a verifier choosing how to read the parameters (README).
BUILD_TYPE = "https://wheelwright.dev/build/wheel/v1"
EMBEDDED_BUILDER = "urn:wheelwright:embedded"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
SBOM_BYPRODUCT = "sbom"


def make_statement(
    document: Mapping[str, Any],
    *,
    builder_id: str | None,
    sbom_path: str,
    sbom_sha256: str,
) -> dict[str, Any]:
    """The statement of a published wheel, from its manifest `document` (with `wheel`)."""
    wheel = document["wheel"]
    image = dict(document.get("image") or {})
    inputs = _request(document.get("inputs") or {})
    internal = {
        "image": image,
        "python": document.get("python"),
        "runtime_freeze": list(document.get("runtime_freeze") or []),
        "build_freeze": list(document.get("build_freeze") or []),
        "build_env": dict(document.get("build_env") or {}),
        "build_system": document.get("build_system"),
        "toolchain": dict(document.get("toolchain") or {}),
        "abi_pins": dict(wheel.get("abi_pins") or {}),
        "source_date_epoch": document.get("source_date_epoch"),
        "compiler_cache": _cache_use(document.get("compiler_cache")),
    }
    metadata = {"invocationId": document.get("build_id") or wheel["request_key"]}
    for field, name in (("startedOn", "started_at"), ("finishedOn", "finished_at")):
        if document.get(name):
            metadata[field] = _rfc3339(str(document[name]))
    host = document.get("host") or {}
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "request": inputs,
                "environment": wheel["environment"],
                "request_key": wheel["request_key"],
            },
            "internalParameters": _json(internal),
            "resolvedDependencies": _dependencies(document, image),
        },
        "runDetails": {
            "builder": {
                "id": builder_id or EMBEDDED_BUILDER,
                "version": {"wheelwright": str(host.get("wheelwright") or "")},
            },
            "metadata": metadata,
            "byproducts": [
                {
                    "name": SBOM_BYPRODUCT,
                    "uri": sbom_path,
                    "digest": {"sha256": sbom_sha256},
                    "mediaType": "application/vnd.cyclonedx+json",
                }
            ],
        },
    }
    statement = {
        "_type": STATEMENT_TYPE_URI,
        "subject": [{"name": wheel["filename"], "digest": {"sha256": wheel["sha256"]}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    check_statement(statement)
    return statement


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The payload: compact JSON, keys sorted."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def check_statement(statement: Any) -> None:
    """`ProvenanceError` unless `statement` is an in-toto v1 Statement with a SLSA v1 predicate
    (parsed and validated by the in-toto-attestation library)."""
    if not isinstance(statement, Mapping):
        raise ProvenanceError("the statement is not a JSON object")
    try:
        message = json_format.ParseDict(dict(statement), statement_pb2.Statement())
        Statement.copy_from_pb(message).validate()
        json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    except (json_format.ParseError, ValueError, KeyError, TypeError) as exc:
        raise ProvenanceError(f"not an in-toto v1 SLSA provenance statement: {exc}") from None
    if message.predicate_type != PREDICATE_TYPE:
        raise ProvenanceError(f"predicate type {message.predicate_type!r}, not {PREDICATE_TYPE}")


def subject_sha256(statement: Mapping[str, Any]) -> dict[str, str]:
    """filename -> sha256 of each subject."""
    return {
        str(s.get("name")): str((s.get("digest") or {}).get("sha256"))
        for s in statement.get("subject", [])
    }


def sbom_byproduct(statement: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for item in statement.get("predicate", {}).get("runDetails", {}).get("byproducts", []):
        if isinstance(item, Mapping) and item.get("name") == SBOM_BYPRODUCT:
            return item
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _dependencies(document: Mapping[str, Any], image: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    source = _mapping(document.get("source"))
    # an older or hand-written manifest may name its source as text: no digest to take from it
    request_source = _mapping(_mapping(document.get("inputs")).get("source"))
    if request_source.get("kind") == "git" and request_source.get("commit"):
        found.append(
            {
                "name": "source",
                "uri": f"git+{request_source.get('url')}",
                "digest": {"gitCommit": str(request_source["commit"])},
            }
        )
    elif source.get("sha256"):
        found.append(
            {
                "name": "source",
                "uri": str(source.get("filename") or request_source.get("path") or "source"),
                "digest": {"sha256": str(source["sha256"])},
            }
        )
    image_id = str(image.get("image_id") or "")
    if image_id:
        algorithm, _, value = image_id.partition(":")
        digest = {algorithm: value} if value else {"sha256": image_id}
        found.append({"name": "image", "uri": str(image.get("image") or ""), "digest": digest})
    return found


def _request(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The request as sent: an uploaded archive by its name and sha256 (not the worker's copy)."""
    request = dict(inputs)
    source = request.get("source")
    if isinstance(source, Mapping) and source.get("kind") == "archive":
        request["source"] = {**source, "path": PurePosixPath(str(source.get("path"))).name}
    return request


def _cache_use(section: Any) -> dict[str, Any]:
    if not isinstance(section, Mapping):
        return {}
    return {k: section[k] for k in ("enabled", "reason") if k in section}


def _rfc3339(text: str) -> str:
    """protobuf's Timestamp takes `Z` or an offset; the manifest's times carry `+00:00`."""
    return text.replace("+00:00", "Z")


def _json(value: Any) -> Any:
    """Nulls dropped from mappings (a Struct holds them, but they say nothing)."""
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value
