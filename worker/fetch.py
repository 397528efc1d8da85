"""The fetch stage: bring the source into the workspace and pin down what it is.

A requirement `name==version` becomes that version's sdist (never a wheel) from the configured
index, extra indexes or find-links folders; an archive is copied; a directory is copied; a git URL
is cloned at the commit its ref resolves to. Each comes back with a sha256 (of the archive, or of
the tree) and a request whose source is resolved, so the request key names content, not paths.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import requests
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename
from packaging.version import Version
from pypi_simple import DigestMismatchError, NoSuchProjectError, PyPISimple

from service.errors import FetchError, SourceNotFoundError, UnsafeArchiveError
from service.models import (
    ArchiveSource,
    BuildRequest,
    DirectorySource,
    GitSource,
    RequirementSource,
)
from worker.unpack import Limits, is_archive, unpack

TREE_IGNORE = (".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache")


@dataclass(frozen=True)
class Fetched:
    request: BuildRequest
    filename: str
    sha256: str
    root: Path

    def source_facts(self) -> dict[str, str]:
        return {"kind": self.request.source.kind, "filename": self.filename, "sha256": self.sha256}


def fetch(request: BuildRequest, workspace: Path, limits: Limits | None = None) -> Fetched:
    """Fetch the source into `workspace/src` (archives are kept in `workspace/dl`)."""
    limits = limits or Limits()
    downloads, src = workspace / "dl", workspace / "src"
    downloads.mkdir(parents=True, exist_ok=True)
    source = request.source
    match source:
        case RequirementSource():
            archive = download_sdist(request, downloads)
            return _from_archive(request, archive, src, limits)
        case ArchiveSource():
            path = Path(source.path)
            if not path.is_file():
                raise SourceNotFoundError(f"archive {source.path} does not exist")
            if not is_archive(path):
                raise UnsafeArchiveError(f"{path.name} is not a .tar.gz, .tar.bz2, .tar.xz or .zip")
            copy = downloads / path.name
            shutil.copyfile(path, copy)
            return _from_archive(request, copy, src, limits)
        case DirectorySource():
            return _from_directory(request, Path(source.path), src)
        case GitSource():
            return _from_git(request, source, src)
    raise SourceNotFoundError(f"unknown source kind {source.kind!r}")


def _from_archive(request: BuildRequest, archive: Path, src: Path, limits: Limits) -> Fetched:
    sha = file_sha256(archive)
    root = unpack(archive, src, limits)
    if isinstance(request.source, ArchiveSource):
        source = request.source.model_copy(update={"sha256": sha, "path": archive.name})
        request = request.model_copy(update={"source": source})
    return Fetched(request=request, filename=archive.name, sha256=sha, root=root)


def _from_directory(request: BuildRequest, path: Path, src: Path) -> Fetched:
    if not path.is_dir():
        raise SourceNotFoundError(f"source directory {path} does not exist")
    shutil.copytree(path, src, symlinks=True, ignore=shutil.ignore_patterns(*TREE_IGNORE[1:]))
    sha = tree_sha256(src)
    if isinstance(request.source, DirectorySource):
        source = request.source.model_copy(update={"sha256": sha})
        request = request.model_copy(update={"source": source})
    return Fetched(request=request, filename=path.name, sha256=sha, root=src)


def _from_git(request: BuildRequest, source: GitSource, src: Path) -> Fetched:
    commit = source.commit or resolve_ref(source.url, source.ref)
    _git("clone", "--quiet", "--no-checkout", source.url, str(src))
    _git("-C", str(src), "checkout", "--quiet", commit)
    _git("-C", str(src), "submodule", "update", "--quiet", "--init", "--recursive")
    root = src / source.subdirectory if source.subdirectory else src
    if not root.is_dir():
        raise SourceNotFoundError(f"{source.url}@{commit} has no folder {source.subdirectory!r}")
    resolved = request.model_copy(update={"source": source.model_copy(update={"commit": commit})})
    return Fetched(request=resolved, filename=f"{source.url}@{commit}", sha256=commit, root=root)


def resolve_ref(url: str, ref: str) -> str:
    """The full commit hash a branch, tag or HEAD of `url` points to."""
    out = _git("ls-remote", url, ref, f"refs/tags/{ref}^{{}}")
    hashes = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        hashes[name] = sha
    for name in (f"refs/tags/{ref}^{{}}", ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
        if name in hashes:
            return hashes[name]
    if hashes:
        return next(iter(hashes.values()))
    raise SourceNotFoundError(f"git ref {ref!r} not found in {url}")


def download_sdist(request: BuildRequest, downloads: Path) -> Path:
    """Find `name==version`'s sdist on the indexes or find-links folders and download it."""
    assert isinstance(request.source, RequirementSource)  # noqa: S101  (callers match on kind)
    name, version = request.source.name, Version(request.source.version)
    for location in request.index.find_links:
        folder = Path(location)
        for candidate in sorted(folder.glob("*")) if folder.is_dir() else ():
            if _is_sdist_of(candidate.name, name, version):
                target = downloads / candidate.name
                shutil.copyfile(candidate, target)
                return target
    seen: list[str] = []
    for index in (request.index.index_url, *request.index.extra_index_urls):
        try:
            with PyPISimple(endpoint=index.rstrip("/") + "/") as client:
                page = client.get_project_page(name, timeout=60)
                for pkg in page.packages:
                    if pkg.package_type == "sdist" and _is_sdist_of(pkg.filename, name, version):
                        target = downloads / pkg.filename
                        client.download_package(pkg, target, timeout=300)
                        return target
                seen += [p.version or "?" for p in page.packages if p.package_type == "sdist"]
        except NoSuchProjectError:
            continue
        except DigestMismatchError as exc:
            msg = f"the sdist of {request.source.requirement} failed its hash check: {exc}"
            raise FetchError(msg) from None
        except requests.RequestException as exc:
            raise FetchError(f"could not reach the index {index}: {exc}") from None
    where = ", ".join((request.index.index_url, *request.index.extra_index_urls))
    if not seen:
        raise SourceNotFoundError(f"no project named {name!r} with an sdist on {where}")
    raise SourceNotFoundError(
        f"no sdist of {name} {version} on {where} (sdists there: {', '.join(sorted(set(seen)))})"
    )


def _is_sdist_of(filename: str, name: str, version: Version) -> bool:
    try:
        found_name, found_version = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return False
    return found_name == canonicalize_name(name) and found_version == version


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def tree_sha256(root: Path) -> str:
    """A digest of a source tree: every file's relative path and content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in TREE_IGNORE for part in rel.parts) or not path.is_file():
            continue
        digest.update(f"{rel.as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout).strip().splitlines()
        raise SourceNotFoundError(
            f"git {args[0]} failed: {detail[-1] if detail else exc}"
        ) from None
    return done.stdout


def resolve_source(request: BuildRequest) -> BuildRequest:
    """Pin the source down cheaply, before any build: archive and tree digests, git commits."""
    source = request.source
    match source:
        case ArchiveSource(sha256=None):
            path = Path(source.path)
            if not path.is_file():
                raise SourceNotFoundError(f"archive {source.path} does not exist")
            resolved: object = source.model_copy(update={"sha256": file_sha256(path)})
        case DirectorySource(sha256=None):
            path = Path(source.path)
            if not path.is_dir():
                raise SourceNotFoundError(f"source directory {path} does not exist")
            resolved = source.model_copy(update={"sha256": tree_sha256(path)})
        case GitSource(commit=None):
            resolved = source.model_copy(update={"commit": resolve_ref(source.url, source.ref)})
        case _:
            return request
    return request.model_copy(update={"source": resolved})
