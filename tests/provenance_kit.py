"""Signing keys for the provenance tests, and the one-byte alterations verify must catch."""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def make_key(folder: Path, name: str) -> tuple[Path, Path]:
    """An Ed25519 key pair as `openssl genpkey -algorithm ed25519` writes it: (private, public)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = folder / f"{name}.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = folder / f"{name}.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def altered_wheel(wheel: Path, target: Path) -> Path:
    """`wheel` with one byte of its last member's data changed (a zip still, a CRC now wrong)."""
    data = wheel.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(flip_byte(data, len(data) // 2))
    return target


def altered_member(wheel: Path, member: str, target: Path) -> Path:
    """`wheel` rewritten with one byte of `member` changed, RECORD left as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == member:
                data = data.replace(b'"version"', b'"versioN"', 1)
            out.writestr(info, data)
    return target


def altered_signature(envelope: bytes) -> bytes:
    """The envelope with one byte of its signature changed."""
    document = json.loads(envelope)
    sig = bytearray(base64.b64decode(document["signatures"][0]["sig"]))
    sig[0] ^= 0x01
    document["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return json.dumps(document).encode()


def altered_statement(envelope: bytes) -> bytes:
    """The envelope with one byte of its statement (the signed payload) changed."""
    document = json.loads(envelope)
    payload = base64.b64decode(document["payload"])
    at = payload.index(b"sha256") + 2
    document["payload"] = base64.b64encode(flip_byte(payload, at)).decode()
    return json.dumps(document).encode()
