"""What `wheelwright verify` proves of a wheel, check by check.

- `envelope`: the provenance is a DSSE envelope of an in-toto statement;
- `signature`: a trusted key (by its id) signed it, and the signature holds over the payload;
- `statement`: the payload is an in-toto v1 Statement with a SLSA Provenance v1 predicate;
- `subject`: the statement names this wheel, with the sha256 of these very bytes;
- `sbom`: the SBOM inside the wheel is the one the statement names (its sha256), is listed in
  RECORD with that hash, and describes this wheel's name and version.

Every check runs that can (a broken envelope leaves nothing else to check), and each failure
says why, so one altered byte names the check it breaks.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from securesystemslib.signer import SSlibKey

from service.errors import ProvenanceError
from service.provenance.envelope import open_envelope
from service.provenance.sbom import sbom_facts
from service.provenance.statement import check_statement, sbom_byproduct, subject_sha256

CHECKS = ("envelope", "signature", "statement", "subject", "sbom")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    """The checks, in order, and what the statement says (trusted only if all passed)."""

    checks: list[Check] = field(default_factory=list)
    statement: Mapping[str, Any] | None = None
    keyid: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def facts(self) -> dict[str, Any]:
        """What was proven, when everything was: who built what from what."""
        return statement_facts(self.statement or {})


def check_envelope(
    envelope: bytes, keys: Sequence[SSlibKey], *, filename: str, sha256: str
) -> Report:
    """The checks that need only the envelope and the wheel's name and digest (the dashboard
    knows those from the manifest)."""
    report = Report()
    try:
        opened = open_envelope(envelope)
    except ProvenanceError as exc:
        report.add("envelope", False, str(exc))
        return report
    report.add("envelope", True, f"a DSSE envelope signed by {len(opened.keyids)} key(s)")
    try:
        report.keyid = opened.verify(keys)
        report.add("signature", True, f"signed by trusted key {report.keyid}")
    except ProvenanceError as exc:
        report.add("signature", False, str(exc))
    try:
        statement = opened.statement()
        check_statement(statement)
    except ProvenanceError as exc:
        report.add("statement", False, str(exc))
        return report
    report.statement = statement
    report.add("statement", True, "an in-toto v1 Statement with a SLSA Provenance v1 predicate")
    subjects = subject_sha256(statement)
    if filename not in subjects:
        report.add("subject", False, f"the statement names {sorted(subjects)}, not {filename}")
    elif subjects[filename] != sha256:
        named = subjects[filename]
        report.add("subject", False, f"the wheel's sha256 is {sha256}, the statement's {named}")
    else:
        report.add("subject", True, f"{filename} sha256 {sha256}")
    return report


def verify_wheel(wheel: Path, envelope: bytes, keys: Sequence[SSlibKey]) -> Report:
    """Every check, over a wheel file and its envelope."""
    with wheel.open("rb") as stream:
        sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
    report = check_envelope(envelope, keys, filename=wheel.name, sha256=sha256)
    if report.statement is not None:
        try:
            detail = _check_sbom(wheel, report.statement)
            report.add("sbom", True, detail)
        except ProvenanceError as exc:
            report.add("sbom", False, str(exc))
    return report


def statement_facts(statement: Mapping[str, Any]) -> dict[str, Any]:
    predicate = statement.get("predicate") or {}
    definition = predicate.get("buildDefinition") or {}
    run = predicate.get("runDetails") or {}
    external = definition.get("externalParameters") or {}
    internal = definition.get("internalParameters") or {}
    depends = {d.get("name"): d for d in definition.get("resolvedDependencies") or []}
    return {
        "subject": subject_sha256(statement),
        "builder": (run.get("builder") or {}).get("id"),
        "builder_version": (run.get("builder") or {}).get("version"),
        "build_id": (run.get("metadata") or {}).get("invocationId"),
        "finished": (run.get("metadata") or {}).get("finishedOn"),
        "environment": external.get("environment"),
        "source": _digest_text(depends.get("source")),
        "image": _digest_text(depends.get("image")),
        "python": internal.get("python"),
        "abi_pins": internal.get("abi_pins"),
        "sbom": _digest_text(sbom_byproduct(statement)),
    }


def _check_sbom(wheel: Path, statement: Mapping[str, Any]) -> str:
    named = sbom_byproduct(statement)
    if named is None:
        raise ProvenanceError("the statement names no SBOM")
    path, want = str(named.get("uri")), str((named.get("digest") or {}).get("sha256"))
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            if path not in names:
                raise ProvenanceError(f"the wheel holds no {path}")
            data = archive.read(path)
            record = next((n for n in names if n.endswith(".dist-info/RECORD")), None)
            rows = archive.read(record).decode("utf-8") if record else ""
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise ProvenanceError(f"the wheel cannot be read: {exc}") from None
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise ProvenanceError(f"{path} has sha256 {got}, the statement names {want}")
    listed = {row[0]: row[1] for row in csv.reader(io.StringIO(rows)) if len(row) >= 2}
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    if listed.get(path) != f"sha256={digest}":
        raise ProvenanceError(f"RECORD does not list {path} with its hash")
    try:
        described = sbom_facts(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ProvenanceError(f"{path} is not a CycloneDX document: {exc}") from None
    name, version, _build, _tags = parse_wheel_filename(wheel.name)
    if canonicalize_name(str(described["name"])) != name or _version(described) != version:
        raise ProvenanceError(
            f"{path} describes {described['name']} {described['version']}, not {name} {version}"
        )
    return f"{path} sha256 {got}, listed in RECORD, describes {name} {version}"


def _version(described: Mapping[str, Any]) -> Version | None:
    try:
        return Version(str(described["version"]))
    except InvalidVersion:
        return None


def _digest_text(item: Mapping[str, Any] | None) -> str | None:
    if not item:
        return None
    digests = ", ".join(f"{k}:{v}" for k, v in sorted((item.get("digest") or {}).items()))
    where = item.get("uri") or item.get("name")
    return f"{where} ({digests})" if digests else str(where)
