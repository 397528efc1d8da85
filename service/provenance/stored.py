"""A published wheel's provenance as the service itself checks it (the dashboard's page): the
stored envelope against the configured keys and the manifest's sha256."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.artifacts.record import Artifact
from service.config import Settings
from service.errors import ObjectNotFoundError, ProvenanceError
from service.provenance.envelope import open_envelope
from service.provenance.keys import trusted_keys
from service.provenance.verify import Report, check_envelope, statement_facts
from service.store import WheelStore


@dataclass(frozen=True)
class Seen:
    """What the page shows: the checks, who signed (or that no one did), the statement."""

    report: Report
    signed_by: tuple[str, ...]
    statement: Any

    @property
    def facts(self) -> dict[str, Any]:
        return statement_facts(self.statement) if isinstance(self.statement, dict) else {}


def stored_provenance(store: WheelStore, settings: Settings, artifact: Artifact) -> Seen | None:
    """None when the wheel has no provenance (published before there was any)."""
    key = artifact.provenance_key
    if key is None:
        return None
    try:
        body = store.get(key)
    except ObjectNotFoundError:
        return None
    keys = [k.key for k in trusted_keys(settings.signing)]
    report = check_envelope(body, keys, filename=artifact.filename, sha256=artifact.sha256)
    try:
        opened = open_envelope(body)
        return Seen(report, opened.keyids, opened.statement())
    except ProvenanceError:
        return Seen(report, (), None)
