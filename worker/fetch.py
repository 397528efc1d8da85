"""The fetch stage: bring the source into the workspace and pin down what it is.

A requirement `name==version` becomes that version's sdist (never a wheel) from the configured
index, extra indexes or find-links folders; an archive is copied; a directory is copied; a git URL
is cloned at the commit its ref resolves to. Each comes back with a sha256 (of the archive, or of
the tree) and a request whose source is resolved, so the request key names content, not paths.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import requests
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename
from packaging.version import Version
from pypi_simple import DigestMismatchError, NoSuchProjectError, PyPISimple

from service.artifacts.checks import Expected
from service.config import Settings
from service.egress import EgressPolicy, EgressProxy
from service.errors import FetchError, SourceNotFoundError, UnsafeArchiveError
from service.models import (
    ArchiveSource,
    BuildRequest,
    DirectorySource,
    GitSource,
    RequirementSource,
)
from service.policy import check_request
from service.sources import TREE_IGNORE, file_sha256, resolve_source, tree_sha256
from worker.git import Git, RefClass
from worker.identity import expected_identity
from worker.unpack import Limits, is_archive, unpack


@dataclass(frozen=True)
class Fetched:
    request: BuildRequest
    filename: str
    sha256: str
    root: Path
    expected: Expected = field(default_factory=Expected)
    #: where a requirement's sdist came from: the index URL or find-links folder, as configured
    index_origin: str | None = None
    #: what a git source's commit is to its repository: the default branch, a tag, ...
    git_ref: RefClass | None = None

    def source_facts(self) -> dict[str, str]:
        return {"kind": self.request.source.kind, "filename": self.filename, "sha256": self.sha256}


def git_for(settings: Settings) -> Git:
    """The worker's git: hardened, and reaching only what the egress policy allows."""
    return Git(
        allow_file=settings.sources.allow_file_git,
        ca_bundle=settings.ca_bundle,
        egress=EgressPolicy.from_settings(settings),
    )


def pin_source(request: BuildRequest, settings: Settings) -> BuildRequest:
    """The request checked against this worker's policy, its source pinned: digests, and a git
    ref resolved to its commit (here, with the hardened git, never in the API)."""
    check_request(request, settings)
    request = resolve_source(request)
    source = request.source
    if isinstance(source, GitSource) and source.commit is None:
        commit = git_for(settings).resolve_ref(source.url, source.ref)
        pinned = source.model_copy(update={"commit": commit})
        request = request.model_copy(update={"source": pinned})
    return request


def fetch(
    request: BuildRequest,
    workspace: Path,
    limits: Limits | None = None,
    git: Git | None = None,
    egress: EgressPolicy | None = None,
) -> Fetched:
    """Fetch the source into `workspace/src` (archives are kept in `workspace/dl`), with what
    it says it is (read before any of its code runs); `egress`: what the indexes may be."""
    fetched = _fetch(request, workspace, limits or Limits(), git or Git(allow_file=False), egress)
    return replace(fetched, expected=expected_identity(fetched.request, fetched.root))


def _fetch(
    request: BuildRequest, workspace: Path, limits: Limits, git: Git, egress: EgressPolicy | None
) -> Fetched:
    downloads, src = workspace / "dl", workspace / "src"
    downloads.mkdir(parents=True, exist_ok=True)
    source = request.source
    match source:
        case RequirementSource():
            archive, origin = download_sdist(request, downloads, egress)
            return replace(_from_archive(request, archive, src, limits), index_origin=origin)
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
            return _from_git(request, source, src, git)
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


def _from_git(request: BuildRequest, source: GitSource, src: Path, git: Git) -> Fetched:
    commit = source.commit or git.resolve_ref(source.url, source.ref)
    git.checkout(source.url, commit, src)
    root = src / source.subdirectory if source.subdirectory else src
    if root.is_symlink() or not root.resolve().is_relative_to(src.resolve()):
        raise UnsafeArchiveError(f"{source.url}@{commit}: {source.subdirectory!r} leaves the repo")
    if not root.is_dir():
        raise SourceNotFoundError(f"{source.url}@{commit} has no folder {source.subdirectory!r}")
    resolved = request.model_copy(update={"source": source.model_copy(update={"commit": commit})})
    ref = git.ref_class(src, source.ref, commit)
    filename = f"{source.url}@{commit}"
    return Fetched(request=resolved, filename=filename, sha256=commit, root=root, git_ref=ref)


@contextmanager
def _index_session(
    egress: EgressPolicy | None, refused: list[str]
) -> Iterator[requests.Session | None]:
    """A session whose requests go through an egress proxy (None: requests' own defaults)."""
    if egress is None:
        yield None
        return
    with EgressProxy(None, egress, on_refused=refused.append) as proxy, requests.Session() as web:
        web.proxies = {"http": proxy.url, "https": proxy.url}
        yield web


def download_sdist(
    request: BuildRequest, downloads: Path, egress: EgressPolicy | None = None
) -> tuple[Path, str]:
    """Find `name==version`'s sdist on the indexes or find-links folders and download it;
    with `egress`, through an egress proxy (the indexes are the request's). Returns the file
    and where it came from (the find-links folder or index URL, as the request names it)."""
    assert isinstance(request.source, RequirementSource)  # noqa: S101  (callers match on kind)
    if request.source.url is not None:  # the lock's sdist: it came from that URL alone
        return download_locked_sdist(request.source, downloads, egress), request.source.url
    name, version = request.source.name, Version(request.source.version)
    for location in request.index.find_links:
        folder = Path(location)
        for candidate in sorted(folder.glob("*")) if folder.is_dir() else ():
            if _is_sdist_of(candidate.name, name, version):
                target = downloads / candidate.name
                shutil.copyfile(candidate, target)
                return target, location
    seen: list[str] = []
    refused: list[str] = []
    for index in (request.index.index_url, *request.index.extra_index_urls):
        try:
            with (
                _index_session(egress, refused) as web,
                PyPISimple(endpoint=index.rstrip("/") + "/", session=web) as client,
            ):
                page = client.get_project_page(name, timeout=60)
                for pkg in page.packages:
                    if pkg.package_type == "sdist" and _is_sdist_of(pkg.filename, name, version):
                        target = downloads / pkg.filename
                        client.download_package(pkg, target, timeout=300)
                        return target, index
                seen += [p.version or "?" for p in page.packages if p.package_type == "sdist"]
        except NoSuchProjectError:
            continue
        except DigestMismatchError as exc:
            msg = f"the sdist of {request.source.requirement} failed its hash check: {exc}"
            raise FetchError(msg) from None
        except requests.RequestException as exc:
            why = f"refused: {refused[-1]}" if refused else str(exc)
            raise FetchError(f"could not reach the index {index}: {why}") from None
    where = ", ".join((request.index.index_url, *request.index.extra_index_urls))
    if not seen:
        raise SourceNotFoundError(f"no project named {name!r} with an sdist on {where}")
    raise SourceNotFoundError(
        f"no sdist of {name} {version} on {where} (sdists there: {', '.join(sorted(set(seen)))})"
    )


def download_locked_sdist(
    source: RequirementSource, downloads: Path, egress: EgressPolicy | None = None
) -> Path:
    """The sdist a lock names for `source` (`name==version` at `url`), downloaded from that
    URL alone (no index is asked, so a same-named package elsewhere is never fetched), through
    an egress proxy with `egress`; its sha256 checked where the lock recorded one."""
    assert source.url is not None  # noqa: S101  (the caller checks)
    filename = unquote(urlsplit(source.url).path.rstrip("/").rsplit("/", 1)[-1])
    if not _is_sdist_of(filename, source.name, Version(source.version)):
        raise FetchError(
            f"the lock's sdist for {source.requirement}, {source.url}, is not an sdist of "
            f"{source.requirement}"
        )
    target = downloads / filename
    refused: list[str] = []
    digest = hashlib.sha256()
    try:
        with _index_session(egress, refused) as web:
            get = (web or requests).get
            with get(source.url, stream=True, timeout=300) as answer:
                answer.raise_for_status()
                with target.open("wb") as out:
                    whole = _copy_bounded(answer, out, digest, Limits().max_bytes)
    except requests.RequestException as exc:
        target.unlink(missing_ok=True)
        why = f"refused: {refused[-1]}" if refused else str(exc)
        raise FetchError(
            f"could not fetch the lock's sdist for {source.requirement} from {source.url}: {why}"
        ) from None
    if not whole:
        target.unlink(missing_ok=True)
        raise FetchError(
            f"the lock's sdist for {source.requirement} at {source.url} is larger than "
            f"{Limits().max_bytes} bytes"
        )
    found = digest.hexdigest()
    if source.sha256 is not None and found != source.sha256:
        target.unlink(missing_ok=True)
        raise FetchError(
            f"the sdist of {source.requirement} at {source.url} has sha256 {found}, but the "
            f"lock records {source.sha256}: not built"
        )
    return target


def _copy_bounded(
    answer: requests.Response, out: BinaryIO, digest: hashlib._Hash, limit: int
) -> bool:
    """Copy `answer`'s body to `out`, hashing it; False (stopped) once past `limit` bytes."""
    size = 0
    for chunk in answer.iter_content(1 << 20):
        size += len(chunk)
        if size > limit:
            return False
        digest.update(chunk)
        out.write(chunk)
    return True


def _is_sdist_of(filename: str, name: str, version: Version) -> bool:
    try:
        found_name, found_version = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return False
    return found_name == canonicalize_name(name) and found_version == version
