"""The service's public keys, at a fixed path: what `wheelwright verify --server` trusts.

Public keys are no secret: the path answers without a token, like the keys a forge publishes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.config import Settings
from service.provenance.keys import KEYS_PATH, keys_document, trusted_keys

router = APIRouter(tags=["provenance"])


@router.get(KEYS_PATH)
def public_keys(request: Request) -> dict[str, Any]:
    """The Ed25519 public keys whose signatures on a wheel's provenance this service accepts:
    the one it signs with now (`signing: true`), and earlier ones kept for a rotation."""
    settings: Settings = request.app.state.settings
    return keys_document(trusted_keys(settings.signing))
