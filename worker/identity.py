"""What the fetched source says it is: the name and version its wheel must carry.

Read by the worker before any of the package's code runs, so nothing the build does can change
it: a requirement names itself; an sdist has PKG-INFO; a source tree may declare a static
`[project]` name and version in pyproject.toml. Files are read without following links and only
up to a size, since the tree is someone else's.
"""

from __future__ import annotations

import tomllib
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from packaging.utils import InvalidSdistFilename, parse_sdist_filename

from service.artifacts.checks import Expected
from service.models import ArchiveSource, BuildRequest, RequirementSource
from worker.safe_files import read_regular

MAX_READ = 1024**2


def expected_identity(request: BuildRequest, root: Path) -> Expected:
    source = request.source
    if isinstance(source, RequirementSource):
        return Expected(source.name, source.version, f"the requested {source.requirement}")
    pkg_info = _read(root, "PKG-INFO")
    if pkg_info:
        headers = HeaderParser().parsestr(pkg_info)
        if headers.get("Name") and headers.get("Version"):
            return Expected(headers["Name"], headers["Version"], "the sdist's PKG-INFO")
    pyproject = _read(root, "pyproject.toml")
    if pyproject:
        try:
            project = tomllib.loads(pyproject).get("project") or {}
        except tomllib.TOMLDecodeError:
            project = {}
        name = project.get("name") if isinstance(project.get("name"), str) else None
        dynamic = project.get("dynamic") or []
        version = project.get("version") if "version" not in dynamic else None
        if name:
            return Expected(name, version if isinstance(version, str) else None, "pyproject.toml")
    if isinstance(source, ArchiveSource):
        try:
            name, version = parse_sdist_filename(PurePosixPath(source.path).name)
            return Expected(str(name), str(version), "the sdist's file name")
        except InvalidSdistFilename:
            pass
    return Expected(origin="nothing (the source declares no static name)")


def _read(root: Path, name: str) -> str | None:
    data = read_regular(root / name, MAX_READ)
    return data.decode("utf-8", "replace") if data is not None else None
