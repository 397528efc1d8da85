"""What a git source may look like before any git command sees it.

A request's URL and ref are strings that git would happily read as options (`--upload-pack=...`)
or as transports that run commands (`ext::sh -c ...`, `fd::`). Only plain `https://` and
`ssh://` URLs pass, and `file://` where the service's settings allow it; a ref is a plain name.
Pure string checks: used by the request model (syntax) and the service's policy (settings).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: Schemes a request may name; `file` only where `sources.allow_file_git` is set.
GIT_SCHEMES: tuple[str, ...] = ("https", "ssh", "file")
_HOST_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})$")
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REF_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,254}$")
_PATH_BAD = re.compile(r"[\x00-\x20\x7f\\]")


def check_git_url(url: str) -> str:
    """`url` unchanged if it is a plain https, ssh or file URL; ValueError saying why not."""
    if _PATH_BAD.search(url):
        raise ValueError(f"git URL {url!r} contains whitespace, control characters or '\\'")
    if url.startswith("-"):
        raise ValueError(f"git URL {url!r} starts with '-' (git would read it as an option)")
    if "::" in url.split("/", 1)[0]:
        raise ValueError(f"git URL {url!r} names a git transport helper ('::'); not allowed")
    parts = urlsplit(url)
    allowed = ", ".join(f"{s}://" for s in GIT_SCHEMES)
    if parts.scheme not in GIT_SCHEMES or not url.startswith(f"{parts.scheme}://"):
        raise ValueError(
            f"git URL {url!r} must start with one of {allowed}"
            " (scp-like 'user@host:path' is written ssh://user@host/path)"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"git URL {url!r} may not carry a query or fragment")
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(f"git URL {url!r} must be file:///absolute/path")
    else:
        _check_authority(url, parts.netloc, parts.scheme)
        if not parts.path.strip("/"):
            raise ValueError(f"git URL {url!r} names no repository path")
    if ".." in parts.path.split("/"):
        raise ValueError(f"git URL {url!r} may not contain '..'")
    return url


def _check_authority(url: str, netloc: str, scheme: str) -> None:
    user, _, hostport = netloc.rpartition("@")
    if user and (scheme != "ssh" or not _USER_RE.match(user)):
        raise ValueError(f"git URL {url!r} may not carry credentials (a user name only for ssh://)")
    host, _, port = hostport.rpartition(":") if not hostport.endswith("]") else (hostport, "", "")
    if not host:
        host, port = hostport, ""
    if port and not port.isdigit():
        raise ValueError(f"git URL {url!r} has a bad port {port!r}")
    if not _HOST_RE.match(host):
        raise ValueError(f"git URL {url!r} has a bad host name {host!r}")


def check_git_ref(ref: str) -> str:
    """A branch, tag or HEAD: letters, digits and `._/+-`, never starting with `-`."""
    if not _REF_RE.match(ref) or ".." in ref or ref.endswith((".lock", "/", ".")) or "//" in ref:
        raise ValueError(
            f"git ref {ref!r} is not a plain branch or tag name (letters, digits, '._/+-';"
            " not starting with '-' or '.')"
        )
    return ref


def git_scheme(url: str) -> str:
    return urlsplit(url).scheme
