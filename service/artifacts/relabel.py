"""Local version labels: `flash_attn-2.8.3+cu130torch2.13-...whl`, like flash-attn's releases.

A label names the environment in the version itself, so wheels of several environments can sit
side by side in one folder or find-links page and `pip list` tells which one is installed.
`relabel_wheel` renames the wheel, its `.dist-info` (and `.data`) folder, the METADATA `Version`
and every RECORD row consistently; all other members keep their bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.version import InvalidVersion, Version

from service.artifacts.rewrite import rewrite_wheel
from service.artifacts.wheelfile import inspect_wheel
from service.errors import InvalidRequestError
from service.models import LOCAL_LABEL_RE as LABEL_RE


def labelled_version(version: str, label: str) -> str:
    """`2.8.3` + `cu130torch2.13` -> `2.8.3+cu130torch2.13` (a local part gets `.label`)."""
    if not LABEL_RE.match(label):
        raise InvalidRequestError(
            f"local version label {label!r} must be lowercase letters and digits, dot-separated"
        )
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise InvalidRequestError(f"{version!r} is not a version to label") from None
    return f"{parsed}.{label}" if parsed.local else f"{parsed}+{label}"


def relabel_wheel(wheel: Path, label: str, dest_dir: Path) -> Path:
    """Write the wheel with its version labelled into `dest_dir`; return its new path."""
    info = inspect_wheel(wheel)
    new_version = labelled_version(info.version, label)
    dist_info = info.metadata_path.split("/", 1)[0]
    distribution = dist_info.removesuffix(".dist-info").rsplit("-", 1)[0]
    renames = {
        f"{distribution}-{info.version}.dist-info/": f"{distribution}-{new_version}.dist-info/",
        f"{distribution}-{info.version}.data/": f"{distribution}-{new_version}.data/",
    }
    parts = wheel.name.removesuffix(".whl").split("-")
    parts[1] = new_version
    target = dest_dir / ("-".join(parts) + ".whl")
    rewrite_wheel(wheel, info, target, _with_version(info.metadata, new_version), renames)
    inspect_wheel(target)  # the name, METADATA and RECORD agree again
    return target


def _with_version(metadata: bytes, version: str) -> bytes:
    text = metadata.decode("utf-8")
    head, sep, body = text.partition("\n\n")
    head = re.sub(r"(?mi)^Version:[ \t]*\S+[ \t]*$", f"Version: {version}", head, count=1)
    return (head + sep + body).encode("utf-8")
