"""A wheel store in an S3 bucket (AWS, MinIO, moto...), spoken to with boto3.

Conditional writes use `If-None-Match: *`: S3 answers 412 PreconditionFailed when the key exists,
or 409 ConditionalRequestConflict when another conditional write of that key is in flight; both
become `ObjectExistsError`. Every put sends its SHA-256 (`x-amz-checksum-sha256`), so the server
verifies the upload and `head` can report the digest without reading the object.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.config import StoreSettings
from service.errors import (
    ConfigError,
    InvalidRequestError,
    ObjectExistsError,
    ObjectNotFoundError,
    StoreError,
)
from service.store.base import StoredObject, check_key, check_prefix

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

_CHUNK = 1024 * 1024
_SPOOL_MAX = 16 * 1024 * 1024
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_CONFLICT = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


class S3Store:
    """`WheelStore` over `bucket`, every key under `prefix`."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> S3Store:
        if not settings.s3_bucket:
            raise ConfigError(
                "store.backend is 's3' but no bucket is set (WHEELWRIGHT_STORE__S3_BUCKET)"
            )
        secret = settings.s3_secret_access_key
        config = Config(
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            signature_version="s3v4",
            s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=config,
        )
        return cls(client, settings.s3_bucket, settings.s3_prefix)

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> StoredObject:
        full_key = self._key(key)
        body, sha, size = _spool(data)
        request: PutObjectRequestTypeDef = {
            "Bucket": self.bucket,
            "Key": full_key,
            "Body": body,
            "ContentType": content_type,
            "ChecksumSHA256": base64.b64encode(bytes.fromhex(sha)).decode(),
            "Metadata": {"sha256": sha},
        }
        if if_absent:
            request["IfNoneMatch"] = "*"
        try:
            with _translated("write", key, conditional=if_absent):
                response = self._client.put_object(**request)
        finally:
            if not isinstance(body, bytes):
                body.close()
        return StoredObject(key=key, size=size, sha256=sha, etag=response.get("ETag"))

    def open(self, key: str) -> BinaryIO:
        with _translated("read", key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        return io.BufferedReader(_BodyReader(response["Body"], key), buffer_size=_CHUNK)

    def get(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def head(self, key: str) -> StoredObject:
        with _translated("head", key):
            response = self._client.head_object(
                Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED"
            )
        sha = _hex_checksum(response.get("ChecksumSHA256")) or response["Metadata"].get("sha256")
        return StoredObject(
            key=key,
            size=response["ContentLength"],
            sha256=sha,
            etag=response.get("ETag"),
            last_modified=response.get("LastModified"),
        )

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> Iterator[StoredObject]:
        check_prefix(prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        with _translated("list", prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"].removeprefix(self.prefix)
                    if _is_key(key):
                        yield StoredObject(
                            key=key,
                            size=item["Size"],
                            etag=item.get("ETag"),
                            last_modified=item.get("LastModified"),
                        )

    def delete(self, key: str) -> None:
        with _translated("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def url(self, key: str, expires_s: int) -> str | None:
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        with _translated("presign", key):
            return self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_s
            )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)


class _BodyReader(io.RawIOBase):
    """A botocore response body as a raw stream, translating read failures to `StoreError`."""

    def __init__(self, body: Any, key: str) -> None:
        self._body = body
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data: bytes = self._body.read(len(view))
        except (BotoCoreError, OSError) as exc:
            raise StoreError(f"S3 read of {self._key!r} broke off: {exc}") from None
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


@contextmanager
def _translated(action: str, key: str, *, conditional: bool = False) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _NOT_FOUND:
            raise ObjectNotFoundError(f"no object {key!r} in the store") from None
        if conditional and code in _CONFLICT:
            raise ObjectExistsError(f"{key!r} already exists in the store") from None
        message = error.get("Message") or exc
        raise StoreError(f"S3 {action} of {key!r} failed: {code}: {message}") from None
    except BotoCoreError as exc:
        raise StoreError(f"S3 {action} of {key!r} failed: {exc}") from None


def _spool(data: bytes | BinaryIO) -> tuple[bytes | BinaryIO, str, int]:
    """The body to send, its SHA-256 and size; a stream is spooled so it can be sent again."""
    if isinstance(data, bytes):
        return data, hashlib.sha256(data).hexdigest(), len(data)
    sha = hashlib.sha256()
    size = 0
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX)  # noqa: SIM115 - closed by put
    while chunk := data.read(_CHUNK):
        sha.update(chunk)
        spool.write(chunk)
        size += len(chunk)
    spool.seek(0)
    return spool, sha.hexdigest(), size  # type: ignore[return-value]


def _hex_checksum(value: str | None) -> str | None:
    if not value or "-" in value:  # "-N": a composite multipart checksum, not the object's
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except binascii.Error:
        return None


def _is_key(key: str) -> bool:
    try:
        check_key(key)
    except InvalidRequestError:
        return False
    return True
