"""Pin a source down cheaply, before any build: archive and tree digests.

Used by the API and the CLI to compute a request key before anything is queued, and by the
worker's fetch stage. Runs no program: a git ref is resolved by the worker (`worker.git`), never
in the API process; until then a git source is keyed by its URL and ref.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from service.errors import SourceNotFoundError
from service.models import ArchiveSource, BuildRequest, DirectorySource

TREE_IGNORE = (".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache")


def resolve_source(request: BuildRequest) -> BuildRequest:
    """Pin the source down cheaply, before any build: archive and tree digests."""
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
        case _:
            return request
    return request.model_copy(update={"source": resolved})


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
