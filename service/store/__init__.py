"""The wheel store: where wheels, their metadata, manifests and logs last.

`WheelStore` is the one swap point; `local.LocalStore` (a directory) and `s3.S3Store` (a bucket)
implement it and pass the same conformance test. Keys are `/`-separated relative paths such as
`wheels/<sha256>/<filename>`. Every backend raises only `service.errors` classes:

- `ObjectNotFoundError`: no object under that key (`get`, `open`, `head`).
- `ObjectExistsError`: a conditional write (`if_absent=True`) found the key taken.
- `StoreError`: anything else the backend ran into (network, permissions, throttling).
- `InvalidRequestError`: the key itself is malformed (see `check_key`); nothing was touched.

`delete` of a missing key is not an error (as in S3).
"""

from __future__ import annotations

from service.config import Settings
from service.errors import ConfigError
from service.store.base import StoredObject, WheelStore, check_key, check_prefix
from service.store.local import LocalStore
from service.store.s3 import S3Store

__all__ = [
    "LocalStore",
    "S3Store",
    "StoredObject",
    "WheelStore",
    "check_key",
    "check_prefix",
    "open_store",
]


def open_store(settings: Settings) -> WheelStore:
    """The store the settings describe: `settings.store.backend` is `local` or `s3`."""
    match settings.store.backend:
        case "local":
            return LocalStore(settings.store_dir)
        case "s3":
            return S3Store.from_settings(settings.store)
        case other:
            raise ConfigError(f"unknown store backend {other!r} (expected 'local' or 's3')")
