"""Turn what a person types (`flash-attn==2.8.3`, `./pkg.tar.gz`, `git+URL@ref`) into a Source."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from pydantic import ValidationError

from service.errors import InvalidRequestError
from service.models import ArchiveSource, DirectorySource, GitSource, Source
from service.models import parse_request as _parse_request


def parse_spec(spec: str) -> Source:
    """A project spec: a git URL, an existing archive or folder, or `name==version`."""
    spec = spec.strip()
    if spec.startswith("git+"):
        return _git(spec.removeprefix("git+"))
    path = Path(spec).expanduser()
    if path.is_dir():
        return DirectorySource(path=str(path.resolve()))
    if path.is_file():
        return ArchiveSource(path=str(path.resolve()))
    if "==" not in spec and ("/" in spec or spec.endswith((".tar.gz", ".zip", ".tgz"))):
        raise InvalidRequestError(f"{spec!r} looks like a path, but nothing is there")
    request = _parse_request({"source": {"kind": "requirement", "requirement": spec}})
    return request.source


def _git(rest: str) -> GitSource:
    url, _, fragment = rest.partition("#")
    subdirectory = parse_qs(fragment).get("subdirectory", [None])[0]
    ref = "HEAD"
    head, sep, tail = url.rpartition("@")
    if sep and "/" not in tail and ":" not in tail:
        url, ref = head, tail
    if not url:
        raise InvalidRequestError(f"git spec {rest!r} has no URL")
    try:
        return GitSource(url=url, ref=ref, subdirectory=subdirectory)
    except ValidationError as exc:
        raise InvalidRequestError(f"git spec {rest!r}: {exc.errors()[0]['msg']}") from None
