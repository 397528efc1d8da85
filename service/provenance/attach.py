"""What publish calls: the SBOM into the wheel before its bytes are fixed, and the signed
provenance of the stored wheel beside it (`layout.provenance_key`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner

from service import layout
from service.artifacts.wheelfile import WheelInfo
from service.config import Settings
from service.errors import ObjectExistsError, ProvenanceError
from service.provenance.envelope import open_envelope, seal
from service.provenance.keys import signer
from service.provenance.sbom import add_sbom, make_sbom, sbom_path
from service.provenance.statement import make_statement
from service.store import WheelStore

ENVELOPE_TYPE = "application/json"


@dataclass(frozen=True)
class Signing:
    """Who signs (None: the provenance is written unsigned) and the builder's id (the
    service's public URL)."""

    signer: CryptoSigner | None = None
    builder_id: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> Signing:
        return cls(signer(settings.signing), settings.public_url)


@dataclass(frozen=True)
class Sbom:
    path: str
    sha256: str


def embed_sbom(  # noqa: PLR0917 (publish's own arguments, in its order)
    wheel: Path,
    info: WheelInfo,
    manifest: Mapping[str, Any],
    abi_pins: Mapping[str, str] | None,
    epoch: int | None,
    target: Path,
) -> tuple[Path, Sbom]:
    """`wheel` with its SBOM (at `target`), and where the SBOM lies and its sha256."""
    facts = {**manifest, "abi_pins": dict(abi_pins or {})}
    document = make_sbom(wheel, info, facts, epoch)
    out = add_sbom(wheel, info, document, target / info.filename)
    return out, Sbom(sbom_path(info), hashlib.sha256(document).hexdigest())


def attach_provenance(
    store: WheelStore, document: Mapping[str, Any], sbom: Sbom, signing: Signing | None
) -> dict[str, Any]:
    """Sign and store the provenance of the published wheel `document` describes; the
    manifest's `provenance` section (the key, and the ids of the keys that signed)."""
    signing = signing or Signing()
    wheel = document["wheel"]
    statement = make_statement(
        document, builder_id=signing.builder_id, sbom_path=sbom.path, sbom_sha256=sbom.sha256
    )
    body = seal(statement, signing.signer)
    key = layout.provenance_key(wheel["sha256"], wheel["filename"])
    try:
        store.put(key, body, content_type=ENVELOPE_TYPE, if_absent=True)
    except ObjectExistsError:
        body = store.get(key)  # these bytes were built and attested before: that one stays
    try:
        keyids = list(open_envelope(body).keyids)
    except ProvenanceError:
        keyids = []
    return {"key": key, "keyids": keyids, "sbom": sbom.path}
