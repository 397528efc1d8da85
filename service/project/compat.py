"""Which wheels a build target can install: its tags and its marker environment.

A target is a build image: one CPython on Linux x86_64 with the glibc of Debian bookworm (2.36),
the same as the machines its wheels are for. The tags are what pip and uv would accept there.
"""

from __future__ import annotations

from packaging.tags import Tag, compatible_tags, cpython_tags

from service.models import Target

GLIBC = (2, 36)
ARCH = "x86_64"


def platforms(arch: str = ARCH, glibc: tuple[int, int] = GLIBC) -> list[str]:
    """manylinux platform tags from the newest this glibc runs down to manylinux1."""
    major, newest = glibc
    tags = [f"manylinux_{major}_{minor}_{arch}" for minor in range(newest, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    ordered: list[str] = []
    for tag in tags:
        ordered.append(tag)
        minor = int(tag.split("_")[2])
        if minor in legacy:
            ordered.append(f"{legacy[minor]}_{arch}")
    return [*ordered, f"linux_{arch}"]


def target_tags(target: Target) -> frozenset[Tag]:
    """Every wheel tag the target's Python accepts, most specific first (as a set)."""
    version = tuple(int(x) for x in target.python.split("."))
    plats = platforms()
    tags = [*cpython_tags(version, platforms=plats), *compatible_tags(version, platforms=plats)]
    return frozenset(tags)


def marker_environment(target: Target) -> dict[str, str]:
    """PEP 508 marker values inside the target's image."""
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{target.python}.0",
        "os_name": "posix",
        "platform_machine": ARCH,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{target.python}.0",
        "python_version": target.python,
        "sys_platform": "linux",
        "extra": "",
    }
