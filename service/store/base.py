"""The `WheelStore` protocol, what it reports (`StoredObject`) and the key rules all backends share.

See the package docstring for the errors every backend raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from service.errors import InvalidRequestError

_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class StoredObject:
    """What the store knows about one object. `sha256` is hex, or None where the backend does
    not know it cheaply (listings)."""

    key: str
    size: int
    sha256: str | None = None
    etag: str | None = None
    last_modified: datetime | None = None


class WheelStore(Protocol):
    """A flat key -> bytes store with conditional writes."""

    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> StoredObject:
        """Store `data` under `key`, atomically; with `if_absent`, only if the key is free."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A readable stream of the object; the caller closes it."""
        ...

    def get(self, key: str) -> bytes: ...

    def head(self, key: str) -> StoredObject: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Objects whose key starts with `prefix` (a plain string prefix), sorted by key."""
        ...

    def delete(self, key: str) -> None: ...

    def url(self, key: str, expires_s: int) -> str | None:
        """A URL a client can GET the object from directly (presigned), or None."""
        ...


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative store key, else raise `InvalidRequestError`.

    Refused: empty keys, absolute keys, backslashes and control characters, empty segments
    (`a//b`, a trailing `/`), and segments starting with `.` (`.`, `..`, hidden names, which the
    local backend reserves for its temporary files).
    """
    problem = None
    if not key:
        problem = "it is empty"
    elif key.startswith("/"):
        problem = "it is absolute"
    elif _BAD_CHARS.search(key):
        problem = "it contains a backslash or a control character"
    elif any(not part for part in key.split("/")):
        problem = "it has an empty path segment"
    elif any(part.startswith(".") for part in key.split("/")):
        problem = "a path segment starts with '.'"
    if problem:
        raise InvalidRequestError(f"invalid store key {key!r}: {problem}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key, optionally with a trailing `/`."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix
