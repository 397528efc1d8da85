"""The service's public keys, at a fixed path: what `wheelwright verify --server` trusts.

Public keys are no secret: the path answers without a token, like the keys a forge publishes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from service.auth import require
from service.config import Settings
from service.errors import InvalidRequestError
from service.models import RebuildOf
from service.provenance.keys import KEYS_PATH, keys_document, trusted_keys
from service.provenance.rebuild import rebuilds

router = APIRouter(tags=["provenance"])


@router.get(KEYS_PATH)
def public_keys(request: Request) -> dict[str, Any]:
    """The Ed25519 public keys whose signatures on a wheel's provenance this service accepts:
    the one it signs with now (`signing: true`), and earlier ones kept for a rotation."""
    settings: Settings = request.app.state.settings
    return keys_document(trusted_keys(settings.signing))


@router.get(
    "/v1/provenance/{environment}/{request_key}/rebuilds",
    dependencies=[Depends(require("read"))],
)
def rebuilds_of(request: Request, environment: str, request_key: str) -> dict[str, Any]:
    """The rebuilds of one published build (`wheelwright verify --rebuild`), newest first: each
    one's build id, `reproduced` or `differs`, and the members that differ."""
    try:
        of = RebuildOf(environment=environment, request_key=request_key)
    except ValidationError:
        raise InvalidRequestError(f"no such build: {environment}/{request_key}") from None
    return {"rebuilds": rebuilds(request.app.state.store, of)}
