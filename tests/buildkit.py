"""Building without services: sdists made from the fixture projects, requests for them, and a
builder that runs the engine over any executor (the fake one in tests/unit, docker and host in
tests/integration)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from service.config import Settings
from service.models import BuildRequest, parse_request
from service.sources import file_sha256
from service.store import WheelStore
from worker.engine import Built, Hooks, run_build
from worker.executors import Executor

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def make_sdist(fixture: str, dest: Path, name: str | None = None, version: str = "0") -> Path:
    """A `.tar.gz` of a fixture folder under one top folder `<name>-<version>/`, like an sdist."""
    top = f"{name or fixture}-{version}"
    archive = dest / f"{top}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(FIXTURES / fixture, arcname=top, filter=_reset)
    return archive


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if "__pycache__" in info.name:
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def evil_tar(dest: Path, member: str, *, link_to: str | None = None) -> Path:
    """A tar with one hostile member: a `..` path, an absolute path, or a link pointing out."""
    archive = dest / "evil-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        if link_to is not None:
            info.type = tarfile.SYMTYPE
            info.linkname = link_to
            tar.addfile(info)
        else:
            data = b"print('pwned')\n"
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def request_for(archive: Path | str, **fields: Any) -> BuildRequest:
    kind = "archive" if Path(archive).suffix in (".gz", ".zip") else "directory"
    return parse_request({"source": {"kind": kind, "path": str(archive)}, **fields})


@dataclass
class Builder:
    settings: Settings
    executor: Executor
    lines: list[str] = field(default_factory=list)

    def build(self, request: BuildRequest, keep: Callable[[Built], Any] | None = None) -> Built:
        """Run the engine; copy the wheel out (the workspace is removed afterwards)."""
        outdir = self.settings.home / "wheels"
        outdir.mkdir(parents=True, exist_ok=True)

        def on_wheel(built: Built) -> Built:
            copy = outdir / built.wheel.name
            copy.write_bytes(built.wheel.read_bytes())
            if keep:
                keep(built)
            return replace(built, wheel=copy)

        hooks = Hooks(on_line=self.lines.append)
        return run_build(request, self.settings, self.executor, on_wheel, hooks=hooks)


def leftover_workspaces(settings: Settings) -> list[str]:
    work = settings.work_dir
    return sorted(p.name for p in work.iterdir()) if work.exists() else []


def uploaded_request(store: WheelStore, sdist: Path, **fields: Any) -> BuildRequest:
    """A request for `sdist` as the API makes it of an upload: the archive kept in the store
    under its own sha256."""
    sha = file_sha256(sdist)
    key = f"uploads/{sha}/{sdist.name}"
    store.put(key, sdist.read_bytes())
    source = {"kind": "archive", "path": sdist.name, "sha256": sha, "store_key": key}
    return parse_request({"source": source, **fields})


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A .tar.gz of `members` (name: bytes), as a project upload sends it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
