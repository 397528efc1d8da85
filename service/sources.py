"""Pin a source down cheaply, before any build: archive and tree digests, git commits.

Used by the API and the CLI to compute a request key before anything is queued, and by the
worker's fetch stage. Needs only `git` on PATH (for git sources).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from service.errors import SourceNotFoundError
from service.models import ArchiveSource, BuildRequest, DirectorySource, GitSource

TREE_IGNORE = (".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache")


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


def resolve_ref(url: str, ref: str) -> str:
    """The full commit hash a branch, tag or HEAD of `url` points to."""
    out = run_git("ls-remote", url, ref, f"refs/tags/{ref}^{{}}")
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


def run_git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout).strip().splitlines()
        raise SourceNotFoundError(
            f"git {args[0]} failed: {detail[-1] if detail else exc}"
        ) from None
    return done.stdout
