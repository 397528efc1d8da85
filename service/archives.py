"""Is a source archive safe to unpack? Checked without writing anything, within bounds.

Used by the API before an upload is stored and by the worker's fetch stage before it unpacks.
Members are walked one by one, so a compressed bomb is refused once the member count or the
unpacked size passes its limit, not after decompressing all of it; every name is checked (no
absolute paths, no `..`, no drive letters), tar members through the standard library's `data`
filter (no links pointing out, no devices), zip members refuse links and corrupt data.
"""

from __future__ import annotations

import lzma
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from service.errors import UnsafeArchiveError

CHECK_DEST = "/nonexistent-wheelwright-check"


@dataclass(frozen=True)
class Limits:
    max_members: int = 100_000
    max_bytes: int = 4 * 1024**3


def check_archive(name: str, stream: IO[bytes], limits: Limits) -> None:
    """Raise `UnsafeArchiveError` naming the first thing wrong with archive `stream`."""
    try:
        if zipfile.is_zipfile(stream):
            stream.seek(0)
            _check_zip(name, stream, limits)
        else:
            stream.seek(0)
            _check_tar(name, stream, limits)
    except UnsafeArchiveError:
        raise
    except tarfile.FilterError as exc:
        raise UnsafeArchiveError(f"{name}: unsafe member refused: {exc}") from None
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        zlib.error,
        lzma.LZMAError,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
    ) as exc:
        raise UnsafeArchiveError(f"{name} is not a readable archive: {exc}") from None


def check_name(archive: str, member: str) -> None:
    path = PurePosixPath(member.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"{archive}: member {member!r} would escape the target folder")


def _check_tar(name: str, stream: IO[bytes], limits: Limits) -> None:
    count = size = 0
    with tarfile.open(fileobj=stream, mode="r:*") as tar:
        for member in tar:
            count, size = count + 1, size + member.size
            _check_limits(name, count, size, limits)
            check_name(name, member.name)
            tarfile.data_filter(member, CHECK_DEST)
            if member.isfile():
                extracted = tar.extractfile(member)
                if extracted is not None:  # read through: a corrupt stream fails here
                    while extracted.read(1024 * 1024):
                        pass


def _check_zip(name: str, stream: IO[bytes], limits: Limits) -> None:
    with zipfile.ZipFile(stream) as zf:
        infos = zf.infolist()
        _check_limits(name, len(infos), sum(i.file_size for i in infos), limits)
        for info in infos:
            check_name(name, info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchiveError(f"{name}: link member {info.filename!r} refused")
        corrupt = zf.testzip()
        if corrupt is not None:
            raise UnsafeArchiveError(f"{name}: member {corrupt!r} is corrupt (bad CRC)")


def _check_limits(name: str, count: int, size: int, limits: Limits) -> None:
    if count > limits.max_members:
        raise UnsafeArchiveError(
            f"{name} has {count} members, more than the limit of {limits.max_members}"
        )
    if size > limits.max_bytes:
        raise UnsafeArchiveError(
            f"{name} unpacks to {size} bytes, more than the limit of {limits.max_bytes}"
        )
