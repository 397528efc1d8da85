"""The build venv the stages install into and read from, and the commands they run.

Shared by the stages of `steps.py`; runs under the build image's Python, like the rest of the
driver, with the bundle's packaging beside it.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if TYPE_CHECKING or __package__:
    from worker.driver import contract
else:  # the flat bundle in the build container
    import contract

StageError = contract.StageError


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no details"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(argv: Sequence[str], *, cwd: str | None = None, what: str) -> None:
    say(" ".join(argv))
    code = subprocess.call(list(argv), cwd=cwd)
    if code != 0:
        raise StageError("command", f"{what} failed (exit code {code}): {' '.join(argv)}")


def venv_python(venv: str) -> str:
    return str(Path(venv) / "bin" / "python")


def uv_install(
    request: contract.CommonRequest, venv: str, reqs: Sequence[str], *extra: str
) -> None:
    if not reqs:
        return
    argv = [request["uv"], "pip", "install", "--python", venv_python(venv), *extra]
    run([*argv, *request["index_args"], *reqs], what=f"installing {', '.join(reqs)}")


def freeze(request: contract.CommonRequest, venv: str, *, everything: bool = False) -> list[str]:
    """`name==version` of the venv's own packages; with `everything` and inherited packages,
    of every distribution its Python can import (uv sees only the venv's own)."""
    if everything and request.get("inherit_packages"):
        versions = installed_versions(venv)
        return sorted(f"{name}=={version}" for name, version in versions.items())
    out = subprocess.check_output(
        [request["uv"], "pip", "freeze", "--python", venv_python(venv)], text=True
    )
    return sorted(line for line in out.splitlines() if line.strip())


def host_site_dirs() -> list[str]:
    """Where this interpreter's own packages are (the node's torch, setuptools)."""
    return sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def installed_versions(venv: str) -> dict[str, str]:
    """Every distribution the venv's Python can import, by normalized name; the venv's own
    before the inherited ones, as for imports. Read from the metadata files: no interpreter
    runs (a `.pth` file of what was just installed would run with it)."""
    sites = [*Path(venv).glob("lib/python3*/site-packages"), *map(Path, host_site_dirs())]
    found: dict[str, str] = {}
    for site in sites:
        for meta in sorted(site.glob("*.dist-info/METADATA")):
            name, version = metadata_name_version(meta)
            if name and version:
                found.setdefault(canonicalize_name(name), version)
    return found


def metadata_name_version(path: Path) -> tuple[str, str]:
    """`Name` and `Version` from the headers of a METADATA file."""
    name = version = ""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                break
            key, _, value = line.partition(":")
            if key.lower() == "name":
                name = value.strip()
            elif key.lower() == "version":
                version = value.strip()
    return name, version


def inherit_host_packages(venv: str) -> list[str]:
    """Let the venv see this interpreter's packages (after its own), with a .pth file."""
    paths = host_site_dirs()
    site = sorted(Path(venv).glob("lib/python3*/site-packages"))[0]
    (site / "_wheelwright_host_packages.pth").write_text("\n".join(paths) + "\n")
    say(f"the venv inherits the packages of {sys.executable}: {', '.join(paths)}")
    return paths


def still_needed(request: contract.CommonRequest, venv: str, reqs: Sequence[str]) -> list[str]:
    """`reqs` less those the inherited packages satisfy (all of them without inheritance)."""
    return partition(request, venv, reqs)[0]


def partition(
    request: contract.CommonRequest, venv: str, reqs: Sequence[str]
) -> tuple[list[str], list[str]]:
    """`reqs` split into those to install and the inherited `name==version`s satisfying the
    others (everything to install without inheritance)."""
    if not request.get("inherit_packages") or not reqs:
        return list(reqs), []
    versions = installed_versions(venv)
    needed, satisfied = [], []
    for text in reqs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        have = versions.get(canonicalize_name(req.name))
        if have is not None and req.specifier.contains(have, prereleases=True):
            say(f"{text}: {req.name} {have} is already there")
            satisfied.append(f"{canonicalize_name(req.name)}=={have}")
            continue
        needed.append(text)
    return needed, satisfied


def installed(venv: str) -> list[str]:
    """`name==version` of every distribution in the venv, read from its files: no interpreter
    of the venv runs (a `.pth` file of what was just installed would run with it)."""
    found = set()
    for meta in Path(venv).glob("lib/python3*/site-packages/*.dist-info/METADATA"):
        name, version = metadata_name_version(meta)
        if name and version:
            found.add(f"{name}=={version}")
    return sorted(found, key=str.lower)
