"""Everything about one built wheel: inspecting it, pinning its ABI, publishing it."""

from __future__ import annotations

from service.artifacts.pins import pin_metadata, pin_wheel
from service.artifacts.publish import lookup, publish, read_manifest
from service.artifacts.record import Artifact
from service.artifacts.wheelfile import WheelInfo, inspect_wheel
from service.layout import is_environment

__all__ = [
    "Artifact",
    "WheelInfo",
    "inspect_wheel",
    "is_environment",
    "lookup",
    "pin_metadata",
    "pin_wheel",
    "publish",
    "read_manifest",
]
