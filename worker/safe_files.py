"""Reading what a build left behind: never through a link, never more than a bound.

Everything a stage could write (its result file, the source tree's metadata, the wheel) may be a
symlink to a file of this host or a device; these helpers refuse both.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


def open_regular(path: Path) -> BinaryIO | None:
    """`path` opened for reading if it is a regular file and not a link (the last component),
    else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of regular file `path`, or None if it is missing, a link, not a regular file
    or longer than `limit`."""
    stream = open_regular(path)
    if stream is None:
        return None
    with stream:
        data = stream.read(limit + 1)
    return data if len(data) <= limit else None
