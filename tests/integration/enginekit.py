"""Helpers for engine tests: sdists made from the fixture projects, a builder with real settings."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
import uv

from tests.buildkit import (
    FIXTURES,
    Builder,
    evil_tar,
    leftover_workspaces,
    make_sdist,
    request_for,
)

__all__ = [
    "FIXTURES",
    "MANAGED",
    "Builder",
    "evil_tar",
    "isolated_build_fails",
    "leftover_workspaces",
    "make_sdist",
    "managed_containers",
    "request_for",
    "run_in_image",
    "torch_find_links",
]

MANAGED = "org.wheelwright.managed"


def torch_find_links() -> str:
    """The folder holding the CPU torch 2.13.0 wheel on these machines (PIP_FIND_LINKS)."""
    folder = os.environ.get("PIP_FIND_LINKS", "/opt/wheels")
    if not list(Path(folder).glob("torch-2.13.0*.whl")):
        msg = f"no torch 2.13.0 wheel in {folder} (PIP_FIND_LINKS); these tests need it"
        raise AssertionError(msg)
    return folder


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
