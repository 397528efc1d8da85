"""A project's files are the caller's data: what their `[tool.uv]` may make uv reach on this host.

uv locks a project on the service's (or the user's) machine, building forbidden. Before it runs,
everything the project names that uv would read or fetch is checked, as a build request's
find-links are (`service.policy`): indexes and find-links are `http(s)://` URLs or folders the
operator allow-lists, and a URL whose host is this host or its networks (loopback, a cloud's
metadata address, a private range) is refused, naming it, unless the operator's egress policy
allows that host and port; git sources pass the git policy; `path` sources (the project's own
folders, absent from the scratch copy uv works in) and settings that point uv at host paths or
programs (its cache folder, Python download mirrors, a keyring program) are refused, naming the
entry. The uv environment (`uv_environment`) pins the rest, where uv lets the environment win
over the project's configuration.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uv

from service.config import Settings
from service.egress import EgressPolicy, EgressProxy, through
from service.errors import InvalidRequestError
from service.gitpolicy import check_git_url, git_scheme
from service.policy import allowed_folders

#: `[tool.uv]` settings that point uv at host paths or programs: never from a project.
REFUSED_SETTINGS = (
    "cache-dir",
    "python-install-mirror",
    "pypy-install-mirror",
    "python-downloads-json-url",
    "keyring-provider",
    "allow-insecure-host",
    "trusted-publishing",
    "publish-url",
    "check-url",
)
WEB_SCHEMES = ("http", "https")
UV_TIMEOUT_S = 600


def check_project(
    data: Mapping[str, Any], settings: Settings, *, egress: EgressPolicy, where: str
) -> None:
    """Raise `InvalidRequestError` naming the first thing of `data` (a parsed pyproject.toml)
    that uv may not read or fetch on this host (`egress`: the operator's policy)."""
    uv = data.get("tool", {}).get("uv", {})
    if not isinstance(uv, Mapping):
        raise InvalidRequestError(f"{where}: [tool.uv] must be a table")
    for key in REFUSED_SETTINGS:
        if key in uv:
            raise InvalidRequestError(
                f"{where}: [tool.uv] {key} is not accepted in a project sent to Wheelwright "
                "(it points uv at this host's files or programs)"
            )
    folders = allowed_folders(settings)
    for url in _index_urls(uv, where):
        check_location(
            url, folders, what=f"{where}: index {url!r}", folders_ok=False, egress=egress
        )
    for location in _strings(uv.get("find-links", []), f"{where}: [tool.uv] find-links"):
        check_location(location, folders, what=f"{where}: find-links {location!r}", egress=egress)
    sources = uv.get("sources", {})
    if not isinstance(sources, Mapping):
        raise InvalidRequestError(f"{where}: [tool.uv.sources] must be a table")
    for name, entries in sources.items():
        for entry in entries if isinstance(entries, list) else [entries]:
            _check_source(str(name), entry, settings, egress, where)


def check_location(
    location: str,
    folders: Iterable[Path],
    *,
    what: str,
    egress: EgressPolicy,
    folders_ok: bool = True,
) -> None:
    """An index or find-links location: an http(s) URL `egress` lets out (no address of this
    host or its networks the operator has not allowed), or (`folders_ok`) an allowed folder."""
    scheme = urlsplit(location).scheme
    if scheme in WEB_SCHEMES:
        refused = egress.refusal(location)
        if refused is not None:
            raise InvalidRequestError(f"{what} is refused before uv runs: {refused}")
        return
    path = location.removeprefix("file://") if scheme == "file" else location
    if folders_ok and scheme in ("", "file") and path.startswith("/"):
        real = Path(os.path.realpath(path))
        if any(real == folder or folder in real.parents for folder in folders):
            return
    allowed = "an http(s) URL" + (
        " or a folder the operator allows (sources.find_links)" if folders_ok else ""
    )
    raise InvalidRequestError(f"{what} is not allowed on this service: it must be {allowed}")


def uv_environment(settings: Settings, work: Path) -> dict[str, str]:
    """The environment uv runs in for a project: the service's own choices, which uv lets win
    over the project's `[tool.uv]`; the user's and the system's uv.toml left out (their
    folders point into the scratch copy), and so are the indexes of the caller's shell."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not (name.startswith("UV_") and name.endswith(("INDEX", "INDEX_URL", "FIND_LINKS")))
    }
    return inherited | {
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_KEYRING_PROVIDER": "disabled",
        "UV_CACHE_DIR": str(settings.home / "uv-cache"),
        "XDG_CONFIG_HOME": str(work),
        "XDG_CONFIG_DIRS": str(work),
    }


def run_uv(
    args: Sequence[str], settings: Settings, work: Path, *, egress: EgressPolicy, what: str
) -> subprocess.CompletedProcess[str]:
    """uv with `args`, in `work` (a scratch folder) and `uv_environment`, bounded in time;
    `what` names the step in the error when it runs too long. Its requests go through an
    egress proxy of this process with `egress`, the operator's policy (never one made from
    settings a project added to): the project's indexes are the caller's, and none of them may
    be this host or its networks unless the operator allows that host and port."""
    refused: list[str] = []
    with EgressProxy(None, egress, on_refused=refused.append) as proxy:
        try:
            done = subprocess.run(
                [uv.find_uv_bin(), *args],
                cwd=work,
                capture_output=True,
                text=True,
                env=through(proxy.url, uv_environment(settings, work)),
                timeout=UV_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise InvalidRequestError(f"{what}: uv ran past {UV_TIMEOUT_S} s") from None
    # uv tells of a 403; the refusal says why (its last lines are what `uv_detail` keeps)
    done.stderr += "".join(f"\nrefused: {reason}" for reason in dict.fromkeys(refused))
    return done


def uv_detail(done: subprocess.CompletedProcess[str]) -> str:
    """The last lines of what uv said, on one line."""
    return " ".join(line.strip() for line in done.stderr.strip().splitlines()[-6:])


def _index_urls(uv: Mapping[str, Any], where: str) -> list[str]:
    urls = _strings(
        [uv[key]] if isinstance(uv.get(key := "index-url"), str) else [], f"{where}: {key}"
    )
    urls += _strings(uv.get("extra-index-url", []), f"{where}: [tool.uv] extra-index-url")
    for entry in uv.get("index", []):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("url"), str):
            raise InvalidRequestError(f"{where}: each [[tool.uv.index]] needs a url")
        urls.append(entry["url"])
    return urls


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"{what} must be a list of strings")
    return list(value)


def _check_source(
    name: str, entry: Any, settings: Settings, egress: EgressPolicy, where: str
) -> None:
    what = f"{where}: [tool.uv.sources] {name}"
    if not isinstance(entry, Mapping):
        raise InvalidRequestError(f"{what} must be a table")
    if "path" in entry:
        raise InvalidRequestError(
            f"{what} is a path source; a project build locks pyproject.toml and uv.lock alone, "
            "so only index, git and url sources can be used"
        )
    if "git" in entry:
        url = str(entry["git"])
        try:
            check_git_url(url)
        except ValueError as exc:
            raise InvalidRequestError(f"{what}: {exc}") from None
        if git_scheme(url) == "file" and not settings.sources.allow_file_git:
            raise InvalidRequestError(
                f"{what}: file:// git sources are not allowed on this service"
                " (sources.allow_file_git)"
            )
    if "url" in entry and urlsplit(str(entry["url"])).scheme not in WEB_SCHEMES:
        raise InvalidRequestError(f"{what}: a url source must be an http(s) URL")
    for key in ("url", "git"):  # what uv fetches itself: refused here, as an index is
        refused = egress.refusal(str(entry.get(key, "")).removeprefix("git+"))
        if refused is not None:
            raise InvalidRequestError(
                f"{what}: {key} {entry[key]!r} is refused before uv runs: {refused}"
            )
