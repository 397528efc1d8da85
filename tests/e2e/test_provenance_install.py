"""Provenance over a wheel the engine built: a small C extension (`modern-ext`) built once by
the real pipeline in the real build container with a signing key configured, served by the real
API. `wheelwright verify` (the installed command) proves it from its index URL; uv and pip
install it with building forbidden, its SBOM listed in RECORD; a rotation of the service's key
keeps it verifiable until the old key is dropped."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import docker
import httpx
import pytest

from service.api.app import create_app
from service.artifacts import Artifact
from service.config import Settings, SigningSettings, load_settings
from service.index import JSON_V1
from service.provenance.keys import trusted_keys
from service.provenance.sbom import SBOM_NAME
from service.store import LocalStore
from tests.e2e.test_index_clients import Index, _pip, _pip_venv, _run, _uv_pip, _uv_venv, serving
from tests.integration.enginekit import make_sdist, managed_containers, request_for
from tests.provenance_kit import make_key
from worker.executors.docker import DockerExecutor
from worker.pipeline import build_and_publish

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

WHEELWRIGHT = str(Path(sys.executable).parent / "wheelwright")
RUN = "import modern_ext._fast, importlib.metadata as m; print(sorted(str(f) for f in m.files('modern-ext') if 'sboms' in str(f)))"  # noqa: E501


@dataclass(frozen=True)
class Served:
    index: Index
    settings: Settings
    store: LocalStore
    artifact: Artifact
    keys: Path

    def wheel_url(self) -> str:
        page = self.index.simple(self.artifact.environment) + "modern-ext/"
        entry = httpx.get(page, headers={"Accept": JSON_V1}).json()["files"][0]
        return urljoin(page, entry["url"])


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, cpu_image: str
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("provenance")
    private, _public = make_key(root / "keys", "a")
    settings = load_settings(
        home=root / "home", executor="docker", signing=SigningSettings(key_file=private)
    )
    store = LocalStore(settings.store_dir)
    sdist = make_sdist("modern-ext", root, "modern_ext", "2.0.0")
    outcome = build_and_publish(request_for(sdist), settings, store, DockerExecutor(settings))
    assert not outcome.cached
    assert managed_containers(docker_client, settings.home) == []
    with serving(create_app(settings, store=store)) as index:
        yield Served(index, settings, store, outcome.artifact, root / "keys")


def _verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WHEELWRIGHT, "verify", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_verify_proves_the_wheel_from_its_index_url(served: Served) -> None:
    done = _verify(served.wheel_url(), "--server", served.index.base)
    assert done.returncode == 0, done.stdout + done.stderr
    keyid = trusted_keys(served.settings.signing)[0].keyid
    assert f"signed by trusted key {keyid}" in done.stderr
    assert f"{served.artifact.filename}': '{served.artifact.sha256}" in done.stdout
    statement = served.artifact.manifest
    assert statement["toolchain"]["gcc"], statement["toolchain"]  # the image's gcc, recorded
    assert statement["source"]["sha256"] in done.stdout  # the sdist, a resolved dependency


def test_a_rotation_keeps_the_wheel_verifiable_until_the_old_key_is_dropped(
    served: Served,
) -> None:
    new_private, _ = make_key(served.keys, "b")
    old_public = served.keys / "a.pub.pem"
    url = served.wheel_url()
    rotated = served.settings.model_copy(
        update={"signing": SigningSettings(key_file=new_private, trusted_keys=(old_public,))}
    )
    with serving(create_app(rotated, store=served.store)) as index:
        kept = _verify(url, "--server", index.base)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    dropped = served.settings.model_copy(update={"signing": SigningSettings(key_file=new_private)})
    with serving(create_app(dropped, store=served.store)) as index:
        failed = _verify(url, "--server", index.base)
    assert failed.returncode == 40, failed.stdout + failed.stderr
    assert "verification failed: signature" in failed.stderr


def test_uv_and_pip_install_it_without_building_the_sbom_in_record(
    served: Served, tmp_path: Path
) -> None:
    url = served.index.simple(served.artifact.environment)
    sbom = f"modern_ext-2.0.0.dist-info/sboms/{SBOM_NAME}"
    python = _uv_venv(tmp_path / "uv")
    _uv_pip(python, tmp_path, "--index-url", url, "modern-ext")
    assert _run([str(python), "-c", RUN], tmp_path).stdout.strip() == str([sbom])
    python = _pip_venv(tmp_path / "pip")
    _pip(python, tmp_path, "--index-url", url, "--only-binary", ":all:", "modern-ext")
    assert _run([str(python), "-c", RUN], tmp_path).stdout.strip() == str([sbom])
