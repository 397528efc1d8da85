"""The statement in a DSSE envelope (securesystemslib): signed by the operator's key, or not.

An envelope with no signature is still written where no key is configured: the statement is
there to read, and `verify` reports it as unsigned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import FormatError, VerificationError
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from service.errors import ProvenanceError
from service.provenance.statement import PAYLOAD_TYPE, statement_bytes

MAX_ENVELOPE_BYTES = 16 * 1024**2


def seal(statement: Mapping[str, Any], signer: CryptoSigner | None) -> bytes:
    """The envelope's bytes: the statement as payload, signed by `signer` if there is one."""
    envelope = Envelope(statement_bytes(statement), PAYLOAD_TYPE, {})
    if signer is not None:
        envelope.sign(signer)
    return json.dumps(envelope.to_dict(), indent=1, sort_keys=True).encode() + b"\n"


@dataclass(frozen=True)
class Opened:
    """An envelope read: its payload (not yet trusted) and the ids of the keys that signed."""

    envelope: Envelope
    keyids: tuple[str, ...]

    def statement(self) -> Any:
        try:
            return json.loads(self.envelope.payload)
        except ValueError as exc:
            raise ProvenanceError(f"the payload is not JSON: {exc}") from None

    def verify(self, keys: Sequence[SSlibKey]) -> str:
        """The id of a trusted key whose signature holds; `ProvenanceError` naming why not."""
        if not self.keyids:
            raise ProvenanceError("the envelope is unsigned")
        trusted: list[Key] = [k for k in keys if k.keyid in self.keyids]
        if not trusted:
            raise ProvenanceError(
                f"signed by {', '.join(self.keyids)}, none of them a trusted key"
                f" ({len(keys)} trusted)"
            )
        try:
            accepted = self.envelope.verify(trusted, 1)
        except VerificationError:
            raise ProvenanceError(
                f"the signature by {', '.join(k.keyid for k in trusted)} does not hold"
                " over this payload"
            ) from None
        return str(next(iter(accepted)))


def open_envelope(data: bytes) -> Opened:
    """Parse a DSSE envelope; `ProvenanceError` for anything that is not one of ours."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise ProvenanceError(f"the envelope is larger than {MAX_ENVELOPE_BYTES} bytes")
    try:
        envelope = Envelope.from_dict(json.loads(data))
    except (ValueError, KeyError, TypeError, FormatError) as exc:
        raise ProvenanceError(f"not a DSSE envelope: {type(exc).__name__}: {exc}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise ProvenanceError(f"payload type {envelope.payload_type!r}, not {PAYLOAD_TYPE}")
    return Opened(envelope, tuple(sorted(envelope.signatures)))
