"""What an index page is made of: the published files of one environment, by project."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from service.artifacts import Artifact

T = TypeVar("T")


@dataclass(frozen=True)
class IndexFile:
    """One wheel on an index page. Its PEP 658 metadata lives at `key + ".metadata"`."""

    filename: str
    key: str
    sha256: str
    size: int
    project: str
    version: str
    requires_python: str | None = None
    metadata_sha256: str | None = None
    upload_time: datetime | None = None
    verified: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    request_key: str | None = None

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> IndexFile:
        return cls(
            filename=artifact.filename,
            key=artifact.wheel_key,
            sha256=artifact.sha256,
            size=artifact.size,
            project=artifact.project,
            version=artifact.version,
            requires_python=artifact.requires_python,
            metadata_sha256=artifact.metadata_sha256,
            upload_time=artifact.published_at,
            verified=verified_summary(artifact.manifest),
            request_key=artifact.request_key,
        )

    def url(self, files_prefix: str) -> str:
        """The file's link: `files_prefix` + the key, percent-encoded (`+` becomes `%2B`)."""
        return files_prefix + quote(self.key, safe="/")


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


@dataclass(frozen=True)
class EnvironmentIndex:
    """The projects of one environment: normalized name -> files sorted by filename."""

    name: str
    projects: Mapping[str, tuple[IndexFile, ...]]
    _memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def files(self) -> list[IndexFile]:
        return [f for name in sorted(self.projects) for f in self.projects[name]]

    def memo(self, key: Any, make: Callable[[], T]) -> T:
        """Rendered pages, kept as long as this (immutable) index is current."""
        if key not in self._memo:
            self._memo[key] = make()
        result: T = self._memo[key]
        return result


def build_environment_index(name: str, files: Iterable[IndexFile]) -> EnvironmentIndex:
    """Group files by project. Of two files with one filename (the same wheel name built with
    other settings), the one published last is listed."""
    by_filename: dict[str, IndexFile] = {}
    for item in files:
        seen = by_filename.get(item.filename)
        if seen is None or _published(item) >= _published(seen):
            by_filename[item.filename] = item
    projects: dict[str, list[IndexFile]] = {}
    for item in by_filename.values():
        projects.setdefault(item.project, []).append(item)
    return EnvironmentIndex(
        name=name,
        projects={
            project: tuple(sorted(items, key=lambda f: f.filename))
            for project, items in sorted(projects.items())
        },
    )


def sorted_versions(files: Iterable[IndexFile]) -> list[str]:
    versions = {f.version for f in files}
    return sorted(versions, key=_version_key)


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def _published(item: IndexFile) -> tuple[float, str]:
    stamp = item.upload_time.timestamp() if item.upload_time else 0.0
    return (stamp, item.key)
