"""A requirements.txt, resolved by uv into a pylock.toml for one target, building forbidden.

The file is the caller's data. Before uv reads it, each line is checked: the indexes and
find-links it names must be ones the service's configuration allows (named in the refusal);
it may not pull in other files (`-r`, `-c`), editable or local trees (`-e`, a path) or a
direct URL, nor any option this module does not know. uv then runs in a scratch folder holding
only a copy of the file, with `--no-build` (nothing of the project runs), `--python-version`
and `--python-platform` of the target's image, and writes a pylock.toml read like any other.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from service.config import Settings
from service.egress import EgressPolicy
from service.errors import InvalidRequestError
from service.models import Target
from service.policy import allowed_folders
from service.project.compat import ARCH, GLIBC
from service.project.files import read_lock_text, read_requirements
from service.project.resolve import NEEDS_BUILD, ProjectLock
from service.project.trust import check_location, run_uv, uv_detail

_COMMENT = re.compile(r"(^|\s)#.*$")  # pip's rule: a # at the start or after a space
INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url")
LINK_OPTIONS = ("--find-links", "-f")
#: Options that change nothing uv may reach: kept as they are.
HARMLESS = ("--no-binary", "--only-binary", "--prefer-binary", "--pre")


def python_platform(target: Target) -> str:
    """uv's `--python-platform` for the target's image (Debian bookworm's glibc, x86_64)."""
    del target  # every image is the same platform today; the argument says what it depends on
    return f"{ARCH}-manylinux_{GLIBC[0]}_{GLIBC[1]}"


def check_requirements(text: str, settings: Settings, *, egress: EgressPolicy, where: str) -> None:
    """Raise `InvalidRequestError` naming the first line of `text` the service may not follow:
    indexes and find-links are checked as a pyproject's are (`trust.check_location`)."""
    folders = allowed_folders(settings)
    for number, line in _lines(text):
        here = f"{where}, line {number}"
        if not line.startswith("-"):
            _check_requirement(line, here)
            continue
        option, value = _option(line)
        if option in INDEX_OPTIONS:
            what = f"{here}: index {value!r}"
            check_location(value, folders, what=what, egress=egress, folders_ok=False)
        elif option in LINK_OPTIONS:
            if not value.startswith(("http://", "https://", "/", "file:///")):
                # uv would read it beside the scratch copy, not beside the user's file
                raise InvalidRequestError(f"{here}: find-links {value!r} must be absolute")
            check_location(value, folders, what=f"{here}: find-links {value!r}", egress=egress)
        elif option not in (*HARMLESS, "--no-index"):
            raise InvalidRequestError(
                f"{here}: option {option!r} is not accepted in a requirements file here "
                "(only indexes, find-links and binary choices; no -r, -c or -e)"
            )


def uv_index_table(text: str) -> dict[str, Any]:
    """Where the (checked) file takes packages from, as the keys of a `[tool.uv]` table: what
    the project's environment and its builds use, as for a pyproject's own indexes."""
    table: dict[str, Any] = {}
    for _, line in _lines(text):
        if not line.startswith("-"):
            continue
        option, value = _option(line)
        if option in ("--index-url", "-i"):
            table["index-url"] = value
        elif option == "--extra-index-url":
            table.setdefault("extra-index-url", []).append(value)
        elif option in LINK_OPTIONS:
            table.setdefault("find-links", []).append(value.removeprefix("file://"))
        elif option == "--no-index":
            table["no-index"] = True
    return table


def requirement_names(text: str) -> set[str]:
    """The names the file requires (what a pyproject would list as its dependencies)."""
    return {canonicalize_name(req.name) for req in _requirements(text)}


def exact_pins(text: str, names: Iterable[str]) -> dict[str, str]:
    """The exact pins (`torch==2.13.0`) of `names` among the file's requirements."""
    wanted = {canonicalize_name(n) for n in names}
    pins: dict[str, str] = {}
    for req in _requirements(text):
        specs = list(req.specifier)
        if canonicalize_name(req.name) in wanted and len(specs) == 1 and specs[0].operator == "==":
            pins[canonicalize_name(req.name)] = specs[0].version
    return pins


def _requirements(text: str) -> list[Requirement]:
    found: list[Requirement] = []
    for _, line in _lines(text):
        if line.startswith("-"):
            continue
        try:
            found.append(Requirement(" ".join(w for w in line.split() if not w.startswith("--"))))
        except InvalidRequirement:
            continue
    return found


def _option(line: str) -> tuple[str, str]:
    head = line.split(maxsplit=1)[0]
    option, _, value = line.partition("=") if "=" in head else line.partition(" ")
    return option.strip(), value.strip()


def _check_requirement(line: str, here: str) -> None:
    words = line.split()
    options = [w for w in words if w.startswith("--")]
    bad = [w for w in options if not w.startswith("--hash")]
    if bad:
        raise InvalidRequestError(
            f"{here}: option {bad[0]!r} is not accepted after a requirement (only --hash)"
        )
    line = " ".join(w for w in words if not w.startswith("--"))
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        raise InvalidRequestError(f"{here}: {line!r} is not a requirement: {exc}") from None
    if requirement.url:
        raise InvalidRequestError(
            f"{here}: direct URL {requirement.url!r} is not accepted; name a version on an index"
        )


def _lines(text: str) -> list[tuple[int, str]]:
    """The logical lines (continuations joined, comments dropped), by their first line number."""
    found: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = _COMMENT.sub("", raw).strip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            found.append((start, line))
    return found


def compile_requirements(
    path: Path,
    settings: Settings,
    target: Target,
    *,
    egress: EgressPolicy,
    index: str | None = None,
    fresh: tuple[str, ...] = (),
    text: str | None = None,
) -> ProjectLock:
    """The pylock.toml text uv makes of `path` for `target`, `index` (the environment's page on
    this service) in front; or the package (`name==version`) uv cannot resolve without building
    it (as `project_lock` says it). Refuses, naming it, what the service may not follow.
    `text`: the file read already (else read here, bounded)."""
    text = read_requirements(path, settings) if text is None else text
    check_requirements(text, settings, egress=egress, where=str(path))
    with tempfile.TemporaryDirectory(prefix="wheelwright-compile-") as scratch:
        work = Path(scratch)
        (work / "requirements.txt").write_text(text, encoding="utf-8")
        refresh = [arg for name in fresh for arg in ("--refresh-package", name)]
        front = ("--index", index, *refresh) if index else ()
        command = [
            "pip",
            "compile",
            "requirements.txt",
            "--no-build",
            "--no-config",
            "--format",
            "pylock.toml",
            "--python-version",
            target.python,
            "--python-platform",
            python_platform(target),
            "--no-header",
            "--quiet",
            *front,
            "-o",
            "pylock.toml",
        ]
        done = run_uv(command, settings, work, egress=egress, what=f"uv pip compile {path}")
        if done.returncode != 0:
            blocker = NEEDS_BUILD.search(done.stderr)
            if blocker is not None:  # only a build of it can tell its dependencies
                return ProjectLock(None, f"{blocker.group(1)}=={blocker.group(2)}")
            detail = uv_detail(done)
            raise InvalidRequestError(
                f"uv could not resolve {path} without building anything: {detail}"
            )
        return ProjectLock(read_lock_text(work / "pylock.toml", settings))
