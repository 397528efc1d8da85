"""Same request, same bytes: a wheel rewritten with nothing of the moment it was built.

Backends stamp zip members with the time of the build, keep the file modes of the build folder
and list members in the order the file system gave them. The stored wheel instead has: every
member dated at SOURCE_DATE_EPOCH (the source's own time; 1980-01-01 at the earliest, the
first time a zip can hold), mode 0644 (0755 where the built file was executable), a fixed
compression, and its members in name order with the `.dist-info` folder last and RECORD at the
very end (where the wheel spec puts them). Each member keeps its exact bytes, so RECORD stays
true.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z


def zip_time(epoch: int | None) -> tuple[int, int, int, int, int, int]:
    moment = time.gmtime(max(ZIP_EPOCH, epoch if epoch is not None else ZIP_EPOCH))
    return (moment.tm_year, moment.tm_mon, moment.tm_mday, moment.tm_hour, moment.tm_min,
            moment.tm_sec - moment.tm_sec % 2)  # fmt: skip


def member_order(name: str) -> tuple[int, str]:
    """Package files first, then the `.dist-info` folder, RECORD last."""
    head = name.split("/", 1)[0]
    if head.endswith(".dist-info"):
        return (2, name) if name.endswith("/RECORD") else (1, name)
    return (0, name)


def normalize_wheel(wheel: Path, target: Path, epoch: int | None) -> Path:
    """Write `target`: `wheel`'s members, byte for byte, with fixed times, modes and order."""
    stamp = zip_time(epoch)
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w") as out:
        members = [m for m in source.infolist() if not m.is_dir()]
        for member in sorted(members, key=lambda m: member_order(m.filename)):
            executable = (member.external_attr >> 16) & 0o111
            fixed = zipfile.ZipInfo(member.filename, stamp)
            fixed.create_system = 3  # unix, so the modes below mean what they say
            fixed.external_attr = (0o100000 | (0o755 if executable else 0o644)) << 16
            fixed.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(fixed, source.read(member), compresslevel=6)
    return target
