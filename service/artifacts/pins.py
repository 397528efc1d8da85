"""ABI pins: make a wheel built against torch X require exactly torch X.

A compiled extension only loads against the torch it was built with, yet its METADATA usually
says `Requires-Dist: torch` (or `torch>=2`). `pin_wheel` rewrites those lines to `torch==X`
(keeping extras and markers), adds an unconditional one where none exists, updates RECORD, and
writes a new wheel of the same name; every other member keeps its exact bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from service.artifacts.rewrite import rewrite_wheel
from service.artifacts.wheelfile import inspect_wheel
from service.errors import InvalidArtifactError, InvalidRequestError

_HEADER = "requires-dist:"


def pin_metadata(metadata: bytes, pins: Mapping[str, str]) -> bytes:
    """METADATA with every `Requires-Dist` naming a pinned project pinned to `==version`."""
    wanted = {canonicalize_name(name): _pin(name, version) for name, version in pins.items()}
    try:
        lines = metadata.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        raise InvalidArtifactError("METADATA is not UTF-8 text") from None
    end = next((i for i, line in enumerate(lines) if not line.strip("\r\n")), len(lines))
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    headers, rest = _fold(lines[:end]), lines[end:]
    unconditional: set[str] = set()
    last_requirement = -1
    for index, header in enumerate(headers):
        if not header.lower().startswith(_HEADER):
            continue
        last_requirement = index
        try:
            req = Requirement(header[len(_HEADER) :].strip())
        except InvalidRequirement:
            continue  # not ours to judge; installers will
        pin = wanted.get(canonicalize_name(req.name))
        if pin is None:
            continue
        req.specifier, req.url = pin.specifier, None
        headers[index] = f"Requires-Dist: {req}{newline}"
        if req.marker is None:
            unconditional.add(canonicalize_name(req.name))
    added = [f"Requires-Dist: {p}{newline}" for n, p in wanted.items() if n not in unconditional]
    at = last_requirement + 1 if last_requirement >= 0 else len(headers)
    headers[at:at] = sorted(added)
    return "".join(headers + rest).encode("utf-8")


def pin_wheel(wheel: Path, pins: Mapping[str, str], dest_dir: Path) -> Path:
    """Write `dest_dir/<same filename>`: `wheel` with its requirements pinned (see module)."""
    target = dest_dir / wheel.name
    if target.resolve() == wheel.resolve():
        raise ValueError("pin_wheel needs a destination other than the wheel's own folder")
    info = inspect_wheel(wheel)
    return rewrite_wheel(wheel, info, target, pin_metadata(info.metadata, pins))


def _pin(name: str, version: str) -> Requirement:
    try:
        return Requirement(f"{name}=={version}")
    except InvalidRequirement:
        raise InvalidRequestError(f"ABI pin {name}=={version} is not a valid requirement") from None


def _fold(lines: list[str]) -> list[str]:
    """Header lines with their continuation lines (leading whitespace) joined to them."""
    headers: list[str] = []
    for line in lines:
        if headers and line[:1] in (" ", "\t"):
            headers[-1] += line
        else:
            headers.append(line)
    return headers
