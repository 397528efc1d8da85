"""Helpers for engine tests: sdists made from the fixture projects, a builder with real settings."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
import uv

from service.config import Settings
from service.models import BuildRequest, parse_request
from worker.engine import Built, Hooks, run_build
from worker.executors import Executor

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MANAGED = "org.wheelwright.managed"


def torch_find_links() -> str:
    """The folder holding the CPU torch 2.13.0 wheel on these machines (PIP_FIND_LINKS)."""
    folder = os.environ.get("PIP_FIND_LINKS", "/opt/wheels")
    if not list(Path(folder).glob("torch-2.13.0*.whl")):
        msg = f"no torch 2.13.0 wheel in {folder} (PIP_FIND_LINKS); these tests need it"
        raise AssertionError(msg)
    return folder


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


def managed_containers(client: docker.DockerClient, home: Path | None = None) -> list[str]:
    """Build containers (of builds whose workspace lies under `home`, when given)."""
    found = client.containers.list(all=True, filters={"label": MANAGED})
    if home is not None:
        prefix = str(home)
        found = [
            c
            for c in found
            if any(m.get("Source", "").startswith(prefix) for m in c.attrs["Mounts"])
        ]
    return [c.name for c in found]


def run_in_image(client: docker.DockerClient, image: str, script: str, wheels: list[Path]) -> str:
    """Run a Python snippet in a fresh container with `wheels` installed (network on)."""
    folder = wheels[0].parent
    names = " ".join(f"/wheels/{w.name}" for w in wheels)
    command = (
        f"set -e; uv venv -q /tmp/v; uv pip install -q --python /tmp/v/bin/python {names}"
        f' --find-links /find-links; /tmp/v/bin/python -c "$SCRIPT"'
    )
    ca = os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    out = client.containers.run(
        image,
        ["bash", "-c", command],
        environment={"SCRIPT": script, "SSL_CERT_FILE": "/ca.pem", "UV_CACHE_DIR": "/tmp/uv"},
        volumes={
            str(folder): {"bind": "/wheels", "mode": "ro"},
            torch_find_links(): {"bind": "/find-links", "mode": "ro"},
            ca: {"bind": "/ca.pem", "mode": "ro"},
        },
        network_mode="host",
        remove=True,
        user="1000:1000",
    )
    return out.decode() if isinstance(out, bytes) else str(out)


def isolated_build_fails(source: Path, tmp: Path) -> str:
    """Build `source` the usual isolated way with uv; return its output (it must fail)."""
    env = {**os.environ, "UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(tmp / "uv-cache")}
    done = subprocess.run(
        [uv.find_uv_bin(), "build", "--wheel", "--out-dir", str(tmp / "isolated"), str(source)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode != 0, "the isolated build was expected to fail"
    return done.stdout + done.stderr


def leftover_workspaces(settings: Settings) -> list[str]:
    work = settings.work_dir
    return sorted(p.name for p in work.iterdir()) if work.exists() else []
