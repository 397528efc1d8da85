"""One published wheel, as its committed manifest describes it: the record the store lookup,
the API, the index pages and the dashboard all read (one record, not one per reader)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from service import layout
from service.errors import InvalidArtifactError


@dataclass(frozen=True)
class Artifact:
    """A published wheel, as its committed manifest describes it."""

    environment: str
    request_key: str
    filename: str
    project: str
    version: str
    sha256: str
    size: int
    metadata_sha256: str
    requires_python: str | None
    published_at: datetime
    manifest: Mapping[str, Any] = field(compare=False, hash=False, repr=False)

    @property
    def wheel_key(self) -> str:
        return layout.wheel_key(self.sha256, self.filename)

    @property
    def metadata_key(self) -> str:
        return layout.metadata_key(self.sha256, self.filename)

    @property
    def manifest_key(self) -> str:
        return layout.manifest_key(self.environment, self.request_key)

    def summary(self) -> dict[str, Any]:
        """The fields as JSON-ready values (no manifest), for the CLI and API answers."""
        return {
            "environment": self.environment,
            "request_key": self.request_key,
            "filename": self.filename,
            "project": self.project,
            "version": self.version,
            "sha256": self.sha256,
            "size": self.size,
            "metadata_sha256": self.metadata_sha256,
            "requires_python": self.requires_python,
            "published_at": self.published_at.isoformat(),
            "wheel_key": self.wheel_key,
        }

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Artifact:
        """Read the `wheel` section of a manifest; `InvalidArtifactError` if it is malformed."""
        wheel = manifest.get("wheel")
        if not isinstance(wheel, Mapping):
            raise InvalidArtifactError("malformed build manifest: no 'wheel' section")
        try:
            requires_python = wheel.get("requires_python")
            return cls(
                environment=_text(wheel, "environment"),
                request_key=_text(wheel, "request_key"),
                filename=_text(wheel, "filename"),
                project=_text(wheel, "project"),
                version=_text(wheel, "version"),
                sha256=_text(wheel, "sha256"),
                size=int(wheel["size"]),
                metadata_sha256=_text(wheel, "metadata_sha256"),
                requires_python=str(requires_python) if requires_python is not None else None,
                published_at=_timestamp(_text(wheel, "published_at")),
                manifest=manifest,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArtifactError(f"malformed build manifest: {exc}") from None

    @property
    def verified(self) -> dict[str, Any] | None:
        """What verify proved of the wheel, for its index entry (`verified_summary`)."""
        return verified_summary(self.manifest)

    def url(self, files_prefix: str) -> str:
        """The wheel's link: `files_prefix` + its key, percent-encoded (`+` becomes `%2B`)."""
        return files_prefix + quote(self.wheel_key, safe="/")

    @property
    def provenance_key(self) -> str | None:
        """Where its signed provenance lies (None: published before there was any)."""
        section = self.manifest.get("provenance")
        key = section.get("key") if isinstance(section, Mapping) else None
        return (
            key
            if isinstance(key, str) and key == layout.provenance_key(self.sha256, self.filename)
            else None
        )

    def provenance_url(self, files_prefix: str) -> str | None:
        """Its provenance's link, as PEP 740's `provenance` field names it."""
        key = self.provenance_key
        return files_prefix + quote(key, safe="/") if key else None


def verified_summary(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """What verify proved of a wheel, for its index entry: the CUDA architectures it holds and
    whether one of its kernels ran on a GPU (and which)."""
    verify = manifest.get("verify")
    if not isinstance(verify, Mapping):
        return None
    summary: dict[str, Any] = {}
    cuda = verify.get("cuda")
    if isinstance(cuda, Mapping):
        summary["cuda"] = {k: cuda.get(k) for k in ("arch_list", "sass", "ptx")}
    gpu = verify.get("gpu")
    if isinstance(gpu, Mapping):
        keys = ("kernel_run", "device", "capability", "reason")
        summary["gpu"] = {k: gpu[k] for k in keys if gpu.get(k) is not None}
    return summary or None


def _timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(section: Mapping[str, Any], name: str) -> str:
    value = section[name]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name!r} must be a non-empty string")
    return value
