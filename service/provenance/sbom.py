"""The SBOM inside each wheel: CycloneDX (1.6, JSON) at `<name>.dist-info/sboms/` (PEP 770).

It lists what the wheel carries (its own extension modules and the shared libraries bundled
beside them, with their sha256) and what built it: the runtime it is pinned to, the build
environment's packages, the Python and the toolchain. Written at publish, from facts that are the
same for the same build (no build id, no time but SOURCE_DATE_EPOCH, no host), so a rebuild
gives the same bytes; the serial number is derived from the content.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from service.artifacts.normalize import ZIP_EPOCH
from service.artifacts.rewrite import record_hash
from service.artifacts.wheelfile import WheelInfo

SBOM_NAME = "wheelwright.cdx.json"
MEDIA_TYPE = "application/vnd.cyclonedx+json"
ROLE = "wheelwright:role"
SHARED_SUFFIXES = (".so", ".pyd", ".dll", ".dylib")


def sbom_path(info: WheelInfo) -> str:
    """`<name>-<version>.dist-info/sboms/wheelwright.cdx.json`."""
    return f"{info.record_path.rsplit('/', 1)[0]}/sboms/{SBOM_NAME}"


def make_sbom(
    wheel: Path, info: WheelInfo, manifest: Mapping[str, Any], epoch: int | None
) -> bytes:
    """The CycloneDX document of `wheel` built as `manifest` says, as canonical bytes."""
    bom = Bom()
    bom.metadata.timestamp = datetime.fromtimestamp(max(ZIP_EPOCH, epoch or ZIP_EPOCH), UTC)
    bom.metadata.component = Component(
        type=ComponentType.LIBRARY,
        name=info.project,
        version=info.version,
        bom_ref="wheel",
        purl=PackageURL("pypi", name=canonicalize_name(info.project), version=info.version),
        properties=[Property(name="wheelwright:filename", value=info.filename)],
    )
    pins = manifest.get("abi_pins") or {}
    for role in ("runtime", "build"):
        for name, version in _pinned(manifest.get(f"{role}_freeze") or []):
            extra = [Property(name="wheelwright:abi-pin", value="true")] if name in pins else []
            bom.components.add(_package(role, name, version, extra))
    for component in _toolchain(manifest):
        bom.components.add(component)
    for component in _carried(wheel):
        bom.components.add(component)
    built_by = ("build:", "toolchain:")
    carried = [c for c in bom.components if not str(c.bom_ref.value).startswith(built_by)]
    if bom.components:  # the wheel needs its runtime and holds its files
        bom.register_dependency(bom.metadata.component, carried or list(bom.components))
    body = json.loads(JsonV1Dot6(bom).output_as_string())
    body.pop("serialNumber", None)  # the library's is random
    body["serialNumber"] = f"urn:uuid:{uuid.UUID(bytes=_digest(body)[:16], version=5)}"
    return json.dumps(body, indent=1, sort_keys=True).encode() + b"\n"


def sbom_facts(data: bytes) -> dict[str, Any]:
    """What verify compares with the provenance: the described wheel's name and version."""
    document = json.loads(data)
    component = document["metadata"]["component"]
    return {"name": component["name"], "version": component["version"]}


def add_sbom(wheel: Path, info: WheelInfo, sbom: bytes, target: Path) -> Path:
    """Write `target`: `wheel` with `sbom` at `sbom_path` and a RECORD row for it (a member of
    that name already there is replaced). Every other member keeps its bytes."""
    path = sbom_path(info)
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w") as out:
        for member in source.infolist():
            if member.filename == path:
                continue
            data = source.read(member)
            if member.filename == info.record_path:
                data = _record(data, path, sbom)
            out.writestr(member, data)
        out.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), sbom, zipfile.ZIP_DEFLATED)
    return target


def _record(record: bytes, path: str, sbom: bytes) -> bytes:
    lines = [line for line in record.decode("utf-8").splitlines() if line.split(",", 1)[0] != path]
    return ("\n".join([*lines, f"{path},{record_hash(sbom)},{len(sbom)}"]) + "\n").encode()


def _pinned(lines: Iterable[str]) -> list[tuple[str, str]]:
    found = []
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue  # an editable or direct reference: not a pinned package
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator == "==":
            found.append((str(canonicalize_name(req.name)), specs[0].version))
    return found


def _package(role: str, name: str, version: str, extra: list[Property]) -> Component:
    return Component(
        type=ComponentType.LIBRARY,
        name=name,
        version=version,
        bom_ref=f"{role}:{name}",
        purl=PackageURL("pypi", name=name, version=version),
        properties=[Property(name=ROLE, value=role), *extra],
    )


def _toolchain(manifest: Mapping[str, Any]) -> list[Component]:
    tools = dict(manifest.get("toolchain") or {})
    python = manifest.get("python")
    if isinstance(python, str) and python:
        tools["python"] = python
    return [
        Component(
            type=ComponentType.APPLICATION,
            name=name,
            version=str(version),
            bom_ref=f"toolchain:{name}",
            properties=[Property(name=ROLE, value="toolchain")],
        )
        for name, version in sorted(tools.items())
        if version
    ]


def _carried(wheel: Path) -> list[Component]:
    """The shared objects in the wheel: its extension modules, and libraries bundled beside them
    (a `<name>.libs/` folder, as auditwheel and delvewheel place them)."""
    found = []
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            name = member.filename
            base = name.rsplit("/", 1)[-1]
            if member.is_dir() or not any(s in base for s in SHARED_SUFFIXES):
                continue
            bundled = any(part.endswith(".libs") for part in name.split("/")[:-1])
            digest = hashlib.sha256(archive.read(member)).hexdigest()
            found.append(
                Component(
                    type=ComponentType.LIBRARY if bundled else ComponentType.FILE,
                    name=name,
                    bom_ref=f"file:{name}",
                    hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)],
                    properties=[Property(name=ROLE, value="bundled" if bundled else "extension")],
                )
            )
    return found


def _digest(body: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
