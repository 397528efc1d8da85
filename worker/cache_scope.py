"""Whose compiler cache a build reads and writes: the project's origin, never its name alone.

The build stage can write any file into the cache folder, and the next build of the scope
compiles with what it finds there, so a scope is trusted only by builds of the origin that
wrote it (DESIGN.md, "Trust boundaries"). Anyone can serve or upload a package called
`torch-scatter`; what tells two of them apart is where it came from:

    index:<name>@<index URL or find-links folder>   the sdist's own index, normalized
    upload:<name>@token:<token name>                 one requester's uploads (or `@anonymous`
                                                     where the service has no tokens)
    git:<host/repository>                            its default branch and tags
    git:<host/repository>@<ref digest>               any other branch, or a bare commit: its
                                                     own scope; it reads the repository's
                                                     (`fallback`) while its own is empty

Each of these ends in `#<inputs digest>`: the other code a build runs besides its source (its
runtime pins, extra build requirements, indexes and find-links, config settings and build env:
`CMAKE_ARGS` can name a compiler launcher, a runtime package can ship a `.pth` file). A request
that adds a build requirement of its own to the team's index build is another origin too, or it
could write the generation the team's next build compiles with.

A scope string names no secret (an index URL loses its user info; a token is named, as the
dashboard names it) and becomes a store key through `service.layout.compiler_cache_prefix`.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from service.models import ArchiveSource, BuildRequest, DirectorySource, GitSource, Requester
from worker.fetch import Fetched
from worker.git import RefClass

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass(frozen=True)
class Scope:
    """The scope a build brings first and the only one it saves to; `fallback`, read-only,
    is brought when `name` has nothing stored yet (a git branch reads its repository's)."""

    name: str
    fallback: str | None = None
    git_ref: RefClass | None = None


#: Build env that only says how many jobs run: the same compiles, whatever the worker's size.
_PARALLELISM_ENV = frozenset({"MAX_JOBS", "NVCC_THREADS", "CMAKE_BUILD_PARALLEL_LEVEL"})


def project_scope(fetched: Fetched, requester: Requester | None) -> Scope | None:
    """The build's scope; None when the project cannot be named before its code runs (or an
    sdist's origin is unknown)."""
    request = fetched.request
    source = request.source
    inputs = inputs_digest(request)
    if isinstance(source, GitSource):
        return git_scope(source.url, fetched.git_ref, source.commit or fetched.sha256, inputs)
    name = fetched.expected.project
    if not name:
        return None
    project = canonicalize_name(name)
    if isinstance(source, ArchiveSource | DirectorySource):
        return Scope(f"upload:{project}@{requester_origin(requester)}#{inputs}")
    if fetched.index_origin is None:  # nothing says where the sdist came from: no cache
        return None
    return Scope(f"index:{project}@{index_origin(fetched.index_origin)}#{inputs}")


def inputs_digest(request: BuildRequest) -> str:
    """A digest of the code a build runs besides its source (see the module's docstring); the
    build env's job counts are left out, the rest is as the prepared request names it."""
    inputs = {
        "runtime": list(request.runtime),
        "build_requires": list(request.build_requires),
        "index": request.index.model_dump(mode="json"),
        "config_settings": request.config_settings,
        "build_env": {k: v for k, v in request.build_env.items() if k not in _PARALLELISM_ENV},
    }
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_scope(url: str, ref: RefClass | None, commit: str, inputs: str) -> Scope:
    """The repository's scope for its default branch and tags; any other ref its own (both
    for these build inputs only)."""
    shared = f"git:{repository(url)}"
    ref = ref or RefClass("other", f"commit:{commit}")
    if ref.shared:
        return Scope(f"{shared}#{inputs}", git_ref=ref)
    digest = hashlib.sha256(ref.name.encode()).hexdigest()[:16]
    return Scope(f"{shared}@{digest}#{inputs}", fallback=f"{shared}#{inputs}", git_ref=ref)


def repository(url: str) -> str:
    """`host[:port]/path` of a git URL: any scheme and user dropped, the host in lower case
    (the path keeps its case: many servers tell `Repo` from `repo`), no `.git` or `/` at the
    end, an `@` quoted. https and ssh URLs of one repository are one repository."""
    rest = _SCHEME_RE.sub("", url)
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2].lower()
    path = re.sub(r"/+", "/", path).rstrip("/").removesuffix(".git").rstrip("/")
    return f"{host}{slash}{path.replace('@', '%40')}"  # `@` parts a scope from its ref


def index_origin(location: str) -> str:
    """An index URL or find-links folder, normalized: `https://PyPI.org:443/simple/` and
    `https://user:secret@pypi.org/simple` are both `https://pypi.org/simple`; a folder is
    `file:` and its normalized path."""
    if not location.startswith(("http://", "https://")):
        return f"file:{posixpath.normpath(location)}"
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    path = re.sub(r"/+", "/", parts.path).rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{path}{query}"


def requester_origin(requester: Requester | None) -> str:
    """Who uploaded: the configured name of the token (never the token), or `anonymous` where
    the service takes builds without one (its embedded default, or `wheelwright build`)."""
    token = requester.token if requester is not None else None
    return f"token:{token}" if token else "anonymous"
