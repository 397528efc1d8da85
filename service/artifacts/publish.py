"""Publish one built wheel into the store, and find it again.

The order is the protocol: the content-addressed wheel and its `.metadata` first, and the
manifest last, written only if absent. The manifest is the commit point: the index lists
a wheel only once its manifest exists, and of two publishers racing on one request key, exactly
one manifest wins; the loser gets the winner's `Artifact` back (a loser's differing wheel stays
behind unlisted, under its own hash). See `layout.py` for the keys.

Right after the manifest, publish writes the catalog's row (an upsert): that is the step that
makes a wheel count on the index. A publish that dies between the two leaves a manifest the
index does not list yet, never a row without its manifest; the next publish of that request
(which finds the manifest) or `wheelwright admin reindex` writes the row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from service import layout
from service.artifacts.checks import Expected, WheelLimits, check_wheel
from service.artifacts.normalize import normalize_wheel
from service.artifacts.pins import pin_wheel
from service.artifacts.record import Artifact
from service.artifacts.relabel import relabel_wheel
from service.artifacts.wheelfile import inspect_wheel
from service.errors import (
    InvalidArtifactError,
    InvalidRequestError,
    ObjectExistsError,
    ObjectNotFoundError,
    StoreError,
)
from service.provenance.attach import Signing, attach_provenance, embed_sbom
from service.store import WheelStore

if TYPE_CHECKING:
    from service.index.catalog import Catalog

WHEEL_TYPE = "application/octet-stream"
TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"
#: The manifest's sections publish alone writes, of the wheel it actually stores.
PUBLISH_SECTIONS = ("wheel", "log", "reproducibility", "provenance")


def publish(
    store: WheelStore,
    *,
    environment: str,
    request_key: str,
    wheel: Path,
    manifest: Mapping[str, Any],
    log_key: str | None = None,
    abi_pins: Mapping[str, str] | None = None,
    local_label: str | None = None,
    expected: Expected | None = None,
    limits: WheelLimits | None = None,
    source_date_epoch: int | None = None,
    signing: Signing | None = None,
    catalog: Catalog | None = None,
) -> Artifact:
    """Store `wheel` (labelled and pinned to `abi_pins` first), its metadata and the manifest.

    The build's log is not written here: whoever runs the build keeps it once, when the build
    has ended, under `log_key`, which the manifest names.

    Returns the committed `Artifact`. If the request key is already published, nothing is written
    and the stored `Artifact` is returned (the first publish wins). `manifest` is the build's
    own sections (what the engine found); this function adds the `wheel`, `log`,
    `reproducibility` and `provenance` sections of what it stores and writes the manifest, once.
    The wheel gets its SBOM, and its provenance is stored beside it, signed per `signing`.
    Raises `InvalidArtifactError` for a broken wheel, or one that is not the `expected` project
    and version or fails the checks of `checks.py` (before anything is stored), and
    `InvalidRequestError` for a bad environment name, request key, a non-JSON manifest or one
    that already holds a section of publish's own.
    `catalog` gets the committed `Artifact`'s row (the winner's, or the one found already
    published: a catalog that lagged is repaired); None leaves the catalog to `reindex`.
    """
    key = layout.manifest_key(environment, request_key)
    try:
        json.dumps(manifest)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"the build manifest is not JSON: {exc}") from None
    taken = sorted(set(PUBLISH_SECTIONS) & manifest.keys())
    if taken:
        raise InvalidRequestError(
            f"the build manifest already holds {', '.join(taken)}: publish alone writes them"
        )
    existing = lookup(store, environment, request_key)
    if existing is not None:
        return _listed(catalog, existing)
    check_wheel(wheel, expected or Expected(), limits)
    info = inspect_wheel(wheel)
    with tempfile.TemporaryDirectory(prefix="wheelwright-publish-") as tmp:
        if local_label:
            wheel = relabel_wheel(wheel, local_label, Path(tmp) / "labelled")
            info = inspect_wheel(wheel)
        if abi_pins:
            wheel = pin_wheel(wheel, abi_pins, Path(tmp) / "pinned")
            info = inspect_wheel(wheel)
        wheel, sbom = embed_sbom(
            wheel, info, manifest, abi_pins, source_date_epoch, Path(tmp) / "sbom"
        )
        # same request, same bytes: fixed times, modes and member order
        wheel = normalize_wheel(wheel, Path(tmp) / "normal" / info.filename, source_date_epoch)
        sha256, size = _file_digest(wheel)
        earlier = earlier_builds(store, request_key)
        with wheel.open("rb") as stream:
            _put_content(store, layout.wheel_key(sha256, info.filename), stream, sha256, WHEEL_TYPE)
    metadata_sha256 = hashlib.sha256(info.metadata).hexdigest()
    meta_key = layout.metadata_key(sha256, info.filename)
    _put_content(store, meta_key, info.metadata, metadata_sha256, TEXT_TYPE)
    document = {
        **manifest,
        "wheel": {
            "filename": info.filename,
            "project": info.project,
            "version": info.version,
            "sha256": sha256,
            "size": size,
            "metadata_sha256": metadata_sha256,
            "requires_python": info.requires_python,
            "abi_pins": dict(sorted((abi_pins or {}).items())),
            "environment": environment,
            "request_key": request_key,
            "published_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        },
        "log": {"key": log_key},
        "reproducibility": {
            "source_date_epoch": source_date_epoch,
            "earlier_sha256": earlier,
            # None: no earlier build of this request to compare with
            "reproduced": (sha256 in earlier) if earlier else None,
        },
    }
    document["provenance"] = attach_provenance(store, document, sbom, signing)  # signed, beside
    remember_build(store, request_key, sha256)
    body = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
    try:
        store.put(key, body, content_type=JSON_TYPE, if_absent=True)
    except ObjectExistsError:
        winner = lookup(store, environment, request_key)
        if winner is None:
            raise StoreError(f"{key!r} was taken and then removed while publishing") from None
        return _listed(catalog, winner)
    return _listed(catalog, Artifact.from_manifest(document))


def _listed(catalog: Catalog | None, artifact: Artifact) -> Artifact:
    if catalog is not None:
        catalog.record(artifact)
    return artifact


def earlier_builds(store: WheelStore, request_key: str) -> list[str]:
    """The sha256 of every wheel published before for this request key (a manifest that was
    removed, a store that lost its index: the request built again)."""
    prefix = layout.history_prefix(request_key)
    return sorted(obj.key.removeprefix(prefix) for obj in store.list(prefix))


def remember_build(store: WheelStore, request_key: str, sha256: str) -> None:
    with contextlib.suppress(ObjectExistsError):  # built before with these very bytes
        store.put(layout.history_key(request_key, sha256), b"", if_absent=True)


def lookup(store: WheelStore, environment: str, request_key: str) -> Artifact | None:
    """The published `Artifact` of a request key in an environment (a cache hit), or None."""
    try:
        body = store.get(layout.manifest_key(environment, request_key))
    except ObjectNotFoundError:
        return None
    return read_manifest(body)


def read_manifest(body: bytes) -> Artifact:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InvalidArtifactError(f"build manifest is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidArtifactError("build manifest is not a JSON object")
    return Artifact.from_manifest(document)


def _put_content(
    store: WheelStore, key: str, data: bytes | BinaryIO, sha256: str, content_type: str
) -> None:
    """Write a content-addressed object; finding it already there with this content is fine."""
    try:
        store.put(key, data, content_type=content_type, if_absent=True)
    except ObjectExistsError:
        existing = store.head(key).sha256
        if existing is not None and existing != sha256:
            raise ObjectExistsError(
                f"{key!r} already holds other content (sha256 {existing}, expected {sha256})"
            ) from None


def _file_digest(path: Path) -> tuple[str, int]:
    with path.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256")
    return digest.hexdigest(), path.stat().st_size
