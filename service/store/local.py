"""A wheel store in a local directory: one file per key, written atomically.

Every write goes to a temporary file in the destination directory first (hashed while it is
written, then fsynced), and is moved into place in one step: `os.replace` for a plain put, and
`os.link` for a conditional put, which fails if the name is taken, so a reader never sees half a
file and exactly one of several racing conditional writers wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from service.errors import ObjectExistsError, ObjectNotFoundError, StoreError
from service.store.base import StoredObject, check_key, check_prefix

_CHUNK = 1024 * 1024
_TMP_PREFIX = ".tmp-"


class LocalStore:
    """`WheelStore` over a directory. `sha256` comes from hashing the file on `head`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> StoredObject:
        del content_type  # a file has no content type; the API derives it from the name
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        except OSError as exc:
            raise StoreError(f"cannot write {key!r} under {self.root}: {exc}") from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(
                    out.fileno(), 0o644
                )  # mkstemp makes 0600; the API may run as another user
                sha, size = _copy(data, out)
                out.flush()
                os.fsync(out.fileno())
            if if_absent:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise ObjectExistsError(f"{key!r} already exists in the store") from None
            else:
                tmp.replace(path)
        except OSError as exc:
            raise StoreError(f"cannot write {key!r} under {self.root}: {exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return StoredObject(key=key, size=size, sha256=sha, etag=_etag(path.stat()))

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r} in the store") from None
        except OSError as exc:
            raise StoreError(f"cannot read {key!r}: {exc}") from exc

    def get(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def head(self, key: str) -> StoredObject:
        sha = hashlib.sha256()
        with self.open(key) as stream:
            while chunk := stream.read(_CHUNK):
                sha.update(chunk)
            stat = os.fstat(stream.fileno())
        return _object(key, stat, sha.hexdigest())

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[StoredObject]:
        check_prefix(prefix)
        directory = prefix.rpartition("/")[0]
        start = self.root.joinpath(*directory.split("/")) if directory else self.root
        found: list[StoredObject] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel == "." else f"{rel}/{name}"
                if name.startswith(".") or not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    found.append(_object(key, Path(dirpath, name).stat(), None))
        yield from sorted(found, key=lambda obj: obj.key)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except IsADirectoryError:
            return  # a "directory" is no object
        except OSError as exc:
            raise StoreError(f"cannot delete {key!r}: {exc}") from exc

    def url(self, key: str, expires_s: int) -> str | None:
        check_key(key)
        return None


def _copy(data: bytes | BinaryIO, out: BinaryIO) -> tuple[str, int]:
    sha = hashlib.sha256()
    if isinstance(data, bytes | bytearray | memoryview):
        sha.update(data)
        out.write(data)
        return sha.hexdigest(), len(data)
    size = 0
    while chunk := data.read(_CHUNK):
        sha.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return sha.hexdigest(), size


def _etag(stat: os.stat_result) -> str:
    return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}-{stat.st_ino:x}"'


def _object(key: str, stat: os.stat_result, sha256: str | None) -> StoredObject:
    modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
    return StoredObject(
        key=key, size=stat.st_size, sha256=sha256, etag=_etag(stat), last_modified=modified
    )
