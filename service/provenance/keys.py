"""The operator's signing key and the public keys a verifier trusts.

The private key comes from `signing.key_file` or `signing.key` (an Ed25519 key, PEM, PKCS#8 as
`openssl genpkey -algorithm ed25519` writes it). Its public key, and the public keys of
`signing.trusted_keys` (earlier keys still accepted after a rotation), are what the service
serves at `KEYS_PATH`; a key id is securesystemslib's (the sha256 of the key's canonical JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib.signer import CryptoSigner, SSlibKey

from service.config import SigningSettings
from service.errors import ConfigError, ProvenanceError

#: Where the service serves its public keys (the API's `service/api/provenance.py`).
KEYS_PATH = "/v1/provenance/keys"
MAX_KEY_BYTES = 64 * 1024


@dataclass(frozen=True)
class PublicKey:
    """One trusted Ed25519 public key, and whether the service signs with it now."""

    key: SSlibKey
    signing: bool = False

    @property
    def keyid(self) -> str:
        return str(self.key.keyid)

    def document(self) -> dict[str, Any]:
        crypto = Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.key.keyval["public"]))
        pem = crypto.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "keyid": self.keyid,
            "keytype": self.key.keytype,
            "scheme": self.key.scheme,
            "public": self.key.keyval["public"],
            "pem": pem.decode(),
            "signing": self.signing,
        }


def signer(settings: SigningSettings) -> CryptoSigner | None:
    """The configured signer, or None when no key is configured (provenance stays unsigned)."""
    if settings.key_file is not None and settings.key is not None:
        raise ConfigError("signing: set key_file or key, not both")
    if settings.key_file is not None:
        pem = _read(settings.key_file, "signing.key_file")
    elif settings.key is not None:
        pem = settings.key.get_secret_value().encode()
    else:
        return None
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"signing: the key is not an unencrypted PEM private key: {exc}"
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(f"signing: the key is {type(private).__name__}, not Ed25519")
    return CryptoSigner(private)


def trusted_keys(settings: SigningSettings) -> list[PublicKey]:
    """The signing key's public half first, then `trusted_keys` (duplicates dropped)."""
    found: list[PublicKey] = []
    active = signer(settings)
    if active is not None:
        found.append(PublicKey(active.public_key, signing=True))
    for path in settings.trusted_keys:
        found.extend(PublicKey(key) for key in parse_keys(_read(path, f"signing key {path}")))
    return _unique(found)


def keys_document(keys: Iterable[PublicKey]) -> dict[str, Any]:
    return {"keys": [k.document() for k in keys]}


def parse_keys(data: bytes) -> list[SSlibKey]:
    """Public keys from a PEM file (one key) or a keys document as `KEYS_PATH` serves it."""
    text = data.strip()
    if text.startswith(b"{"):
        try:
            document = json.loads(text)
            entries = document["keys"]
            return [_from_pem(str(entry["pem"]).encode()) for entry in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProvenanceError(f"not a keys document: {exc}") from None
    return [_from_pem(text)]


def by_id(keys: Iterable[SSlibKey]) -> Mapping[str, SSlibKey]:
    return {str(k.keyid): k for k in keys}


def _from_pem(pem: bytes) -> SSlibKey:
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ProvenanceError(f"not a PEM public key: {exc}") from None
    if not isinstance(public, Ed25519PublicKey):
        raise ProvenanceError(f"the public key is {type(public).__name__}, not Ed25519")
    return SSlibKey.from_crypto(public)


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_BYTES:
        raise ConfigError(f"{what}: {path} is larger than {MAX_KEY_BYTES} bytes")
    return data


def _unique(keys: list[PublicKey]) -> list[PublicKey]:
    seen: set[str] = set()
    out = []
    for key in keys:
        if key.keyid not in seen:
            seen.add(key.keyid)
            out.append(key)
    return out
