"""What an index page is made of: the published files of one environment, by project.

A file on a page is the published `Artifact` itself (its PEP 658 metadata at
`wheel_key + ".metadata"`): one record from the store to the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from packaging.version import InvalidVersion, Version

from service.artifacts import Artifact

T = TypeVar("T")


@dataclass(frozen=True)
class EnvironmentIndex:
    """The projects of one environment: normalized name -> files sorted by filename."""

    name: str
    projects: Mapping[str, tuple[Artifact, ...]]
    _memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def files(self) -> list[Artifact]:
        return [f for name in sorted(self.projects) for f in self.projects[name]]

    def memo(self, key: Any, make: Callable[[], T]) -> T:
        """Rendered pages, kept as long as this (immutable) index is current."""
        if key not in self._memo:
            self._memo[key] = make()
        result: T = self._memo[key]
        return result


def build_environment_index(name: str, files: Iterable[Artifact]) -> EnvironmentIndex:
    """Group files by project. Of two files with one filename (the same wheel name built with
    other settings), the one published last is listed."""
    by_filename: dict[str, Artifact] = {}
    for item in files:
        seen = by_filename.get(item.filename)
        if seen is None or _published(item) >= _published(seen):
            by_filename[item.filename] = item
    projects: dict[str, list[Artifact]] = {}
    for item in by_filename.values():
        projects.setdefault(item.project, []).append(item)
    return EnvironmentIndex(
        name=name,
        projects={
            project: tuple(sorted(items, key=lambda f: f.filename))
            for project, items in sorted(projects.items())
        },
    )


def sorted_versions(files: Iterable[Artifact]) -> list[str]:
    versions = {f.version for f in files}
    return sorted(versions, key=_version_key)


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def _published(item: Artifact) -> tuple[float, str]:
    return (item.published_at.timestamp(), item.wheel_key)
