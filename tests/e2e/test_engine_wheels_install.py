"""The team cache, proven with wheels the engine built: uv and pip install them, nothing compiles.

`numpy-ext` (its setup.py imports numpy, undeclared) is built by the real pipeline in the real
build containers, twice: against numpy A and numpy B, with `abi_pins=("numpy",)`, so each wheel's
METADATA requires exactly the numpy it was compiled against and lands in its own environment. The
real API serves the store under uvicorn on loopback; the real uv and pip install from it into fresh
venvs with building forbidden, numpy coming from PyPI. The sdist carries a `PKG-INFO` of
Metadata-Version 2.1, the kind uv cannot lock from without building: with our wheel and its PEP 658
metadata on the index, `uv lock --no-build` needs no build.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

from service.api.app import create_app
from service.artifacts import Artifact
from service.config import Settings, load_settings
from service.index import JSON_V1
from service.index_config import PYPI, render_uv_config
from service.store import LocalStore
from tests.e2e.test_index_clients import (
    Index,
    _pip,
    _pip_venv,
    _run,
    _uv,
    _uv_pip,
    _uv_venv,
    serving,
)
from tests.integration.enginekit import (
    leftover_workspaces,
    make_sdist,
    managed_containers,
    request_for,
)
from worker.executors.docker import DockerExecutor
from worker.pipeline import build_and_publish

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

NUMPY_A, NUMPY_B = "2.3.5", "2.4.4"  # both have cp311 manylinux wheels on PyPI
WHEEL = "npext-1.0.0-cp311-cp311-linux_x86_64.whl"
LEGACY_PKG_INFO = b"Metadata-Version: 2.1\nName: npext\nVersion: 1.0.0\nRequires-Dist: numpy\n"
RUN_NPEXT = "import npext, numpy; print(npext.total([1.0, 2.0]), numpy.__version__)"


@dataclass(frozen=True)
class Served:
    index: Index
    settings: Settings
    store: LocalStore
    sdist: Path
    artifacts: dict[str, Artifact]  # numpy version -> the npext built against it

    def url(self, numpy: str) -> str:
        return self.index.simple(self.artifacts[numpy].environment)


def legacy_sdist(dest: Path) -> Path:
    """numpy-ext as an old sdist: `make_sdist`'s tree plus a Metadata-Version 2.1 `PKG-INFO`."""
    staging = dest / "staging"
    staging.mkdir()
    plain = make_sdist("numpy-ext", staging, "npext", "1.0.0")
    archive = dest / plain.name
    with tarfile.open(plain) as source, tarfile.open(archive, "w:gz") as out:
        for member in source.getmembers():
            out.addfile(member, source.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo("npext-1.0.0/PKG-INFO")
        info.size = len(LEGACY_PKG_INFO)
        out.addfile(info, io.BytesIO(LEGACY_PKG_INFO))
    return archive


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, cpu_image: str
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("engine-index")
    settings = load_settings(home=root / "home", executor="docker", abi_pins=("numpy",))
    store = LocalStore(settings.store_dir)
    executor = DockerExecutor(settings)
    sdist = legacy_sdist(root)
    artifacts: dict[str, Artifact] = {}
    for numpy in (NUMPY_A, NUMPY_B):
        request = request_for(sdist, runtime=[f"numpy=={numpy}"])
        outcome = build_and_publish(request, settings, store, executor)
        assert not outcome.cached
        assert outcome.build_id is not None
        artifacts[numpy] = outcome.artifact
    assert managed_containers(docker_client, settings.home) == [], (
        "a build container was left behind"
    )
    assert leftover_workspaces(settings) == [], "a workspace was left behind"
    with serving(create_app(settings, store=store)) as index:
        yield Served(index, settings, store, sdist, artifacts)


def _runs(python: Path, tmp: Path) -> tuple[str, str]:
    total, numpy = _run([str(python), "-c", RUN_NPEXT], tmp).stdout.split()
    return total, numpy


def test_the_engine_built_each_environment_against_its_own_numpy(served: Served) -> None:
    with tarfile.open(served.sdist) as sdist:
        pkg_info = sdist.extractfile("npext-1.0.0/PKG-INFO")
        assert pkg_info is not None
        assert pkg_info.read().startswith(b"Metadata-Version: 2.1\n")
    sdist_sha256 = hashlib.sha256(served.sdist.read_bytes()).hexdigest()
    environments = set()
    for numpy, artifact in served.artifacts.items():
        assert artifact.filename == WHEEL
        assert artifact.environment.startswith(f"cpu-py311-numpy{numpy}-")
        manifest = artifact.manifest
        assert manifest["source"]["sha256"] == sdist_sha256  # the Metadata-Version 2.1 sdist
        assert f"numpy=={numpy}" in manifest["runtime_freeze"]
        assert manifest["wheel"]["abi_pins"] == {"numpy": numpy}
        assert manifest["verify"]["imported"] == ["npext"]
        environments.add(artifact.environment)
    assert len(environments) == 2


def test_each_environment_page_lists_only_its_own_wheel(served: Served) -> None:
    seen: set[str] = set()
    for numpy, artifact in served.artifacts.items():
        page_url = served.url(numpy) + "npext/"
        listing = httpx.get(page_url, headers={"Accept": JSON_V1})
        assert listing.headers["content-type"] == JSON_V1
        (entry,) = listing.json()["files"]  # the wheel only: no sdist, no other environment's
        assert entry["filename"] == WHEEL
        assert entry["hashes"]["sha256"] == artifact.sha256
        assert entry["core-metadata"] == {"sha256": artifact.metadata_sha256}
        wheel = httpx.get(httpx.URL(page_url).join(entry["url"]))
        assert hashlib.sha256(wheel.content).hexdigest() == artifact.sha256
        metadata = httpx.get(httpx.URL(page_url).join(entry["url"] + ".metadata"))
        assert hashlib.sha256(metadata.content).hexdigest() == artifact.metadata_sha256
        assert f"Requires-Dist: numpy=={numpy}\n" in metadata.text
        html = httpx.get(page_url, headers={"Accept": "text/html"}).text
        (anchor,) = re.findall(r"<a [^>]*>[^<]*</a>", html)
        assert f"#sha256={artifact.sha256}" in anchor
        assert f'data-core-metadata="sha256={artifact.metadata_sha256}"' in anchor
        assert anchor.endswith(f">{WHEEL}</a>")
        projects = httpx.get(served.url(numpy), headers={"Accept": JSON_V1}).json()["projects"]
        assert projects == [{"name": "npext"}]
        seen.add(artifact.sha256)
    assert len(seen) == 2, "both environments serve the same wheel"


def test_uv_pip_install_takes_npext_from_us_and_numpy_from_pypi(
    served: Served, tmp_path: Path
) -> None:
    # uv searches --extra-index-url (PyPI) before --index-url; PyPI has no `npext`. That numpy
    # came in at exactly NUMPY_A shows the wheel is ours: only its METADATA pins it.
    python = _uv_venv(tmp_path)
    _uv_pip(
        python, tmp_path, "--index-url", served.url(NUMPY_A), "--extra-index-url", PYPI, "npext"
    )
    assert _runs(python, tmp_path) == ("3.0", NUMPY_A)


def test_pip_install_only_binaries(served: Served, tmp_path: Path) -> None:
    python = _pip_venv(tmp_path)
    url = served.url(NUMPY_B)
    _pip(
        python,
        tmp_path,
        *("--only-binary", ":all:", "--index-url", url, "--extra-index-url", PYPI, "npext"),
    )
    assert _runs(python, tmp_path) == ("3.0", NUMPY_B)


def test_uv_lock_and_sync_never_build(served: Served, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "sample"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["npext"]\n\n'
        + render_uv_config(served.index.base, served.artifacts[NUMPY_A].environment, ["npext"])
    )
    _run([_uv(), "lock", "--no-build"], tmp_path, cwd=project)
    lock = (project / "uv.lock").read_text()
    assert f'source = {{ registry = "{served.url(NUMPY_A)}" }}' in lock
    assert f'name = "numpy"\nversion = "{NUMPY_A}"' in lock
    assert "sdist" not in lock.split('name = "npext"', 1)[1].split("[[package]]", 1)[0]
    _run([_uv(), "sync", "--no-build"], tmp_path, cwd=project)
    assert _runs(project / ".venv" / "bin" / "python", tmp_path) == ("3.0", NUMPY_A)
    built = [p for p in (tmp_path / "uv-cache").glob("sdists-*/*") if not p.name.startswith(".")]
    assert built == [], "uv built a source distribution"


def test_another_environments_numpy_fails_to_resolve(served: Served, tmp_path: Path) -> None:
    python = _uv_venv(tmp_path)
    url = served.url(NUMPY_A)
    uv = _uv_pip(
        python,
        tmp_path,
        *("--index-url", url, "--extra-index-url", PYPI, "npext", f"numpy=={NUMPY_B}"),
        check=False,
    )
    assert uv.returncode != 0
    assert f"all versions of npext depend on numpy=={NUMPY_A}" in uv.stderr, uv.stderr
    assert f"you require numpy=={NUMPY_B}" in uv.stderr, uv.stderr
    assert "unsatisfiable" in uv.stderr, uv.stderr
    pip = _pip(
        _pip_venv(tmp_path / "pip"),
        tmp_path,
        *("--only-binary", ":all:", "--index-url", url, "--extra-index-url", PYPI),
        *("npext", f"numpy=={NUMPY_B}"),
        check=False,
    )
    assert pip.returncode != 0
    assert f"npext 1.0.0 depends on numpy=={NUMPY_A}" in pip.stdout + pip.stderr
    _uv_pip(
        python,
        tmp_path,
        "--index-url",
        url,
        "--extra-index-url",
        PYPI,
        "npext",
        f"numpy=={NUMPY_A}",
    )
    assert _runs(python, tmp_path) == ("3.0", NUMPY_A)


def test_a_repeated_request_is_answered_from_the_store(served: Served) -> None:
    settings = served.settings
    logs = sorted((settings.home / "logs").iterdir())
    request = request_for(served.sdist, runtime=[f"numpy=={NUMPY_B}"])
    outcome = build_and_publish(request, settings, served.store, DockerExecutor(settings))
    assert outcome.cached
    assert outcome.build_id is None
    assert outcome.artifact == served.artifacts[NUMPY_B]
    assert sorted((settings.home / "logs").iterdir()) == logs, "a build was started"
