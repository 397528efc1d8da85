"""The real clients against the real API: uv and pip install, lock and sync from our index.

The API runs under uvicorn on 127.0.0.1 over a local store holding small pure wheels published
here, its catalog on SQLite and on PostgreSQL (each test runs over both). Each client runs in
a fresh venv with its own cache and none of the host's configuration (`UV_NO_CONFIG`,
`PIP_CONFIG_FILE=/dev/null`, `--isolated`), so only our index is consulted.
`abi-dep` stands in for torch: `fake-ext` is published to two environments pinned to two versions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from service.api.app import create_app
from service.artifacts import publish
from service.config import DatabaseSettings, Settings
from service.index import JSON_V1, Catalog
from service.index.sql import open_catalog
from service.index_config import render_uv_config
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel

pytestmark = pytest.mark.e2e

ENV_1 = "cpu-py311-abidep1.0-e2e00001"
ENV_2 = "cpu-py311-abidep2.0-e2e00002"
PINS = {ENV_1: "1.0", ENV_2: "2.0"}
EXT_VERSION = "0.1.0+abi"


@dataclass(frozen=True)
class Index:
    base: str

    def simple(self, environment: str) -> str:
        return f"{self.base}/simple/{environment}/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _publish_all(store: LocalStore, work: Path, catalog: Catalog) -> None:
    for environment, pin in PINS.items():
        ext = make_wheel(work / environment, "fake_ext", EXT_VERSION, requires=["abi-dep"])
        publish(
            store,
            environment=environment,
            request_key="fake-ext",
            wheel=ext,
            manifest={},
            abi_pins={"abi-dep": pin},
            catalog=catalog,
        )
        for version in ("1.0", "2.0"):
            dep = make_wheel(work / environment / version, "abi-dep", version)
            key = f"abi-dep-{version}"
            publish(
                store,
                environment=environment,
                request_key=key,
                wheel=dep,
                manifest={},
                catalog=catalog,
            )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Index]:
    """The index over each catalog database, its rows written by publish (not by a reindex)."""
    root = tmp_path_factory.mktemp("index")
    store = LocalStore(root / "store")
    settings = Settings(home=root)
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_server").new_database()
        settings = Settings(home=root, database=DatabaseSettings(url=SecretStr(url)))
    catalog = open_catalog(settings)
    catalog.mark_filled()  # so the app does not fill it from the store: publish alone writes
    _publish_all(store, root / "wheels", catalog)
    with serving(create_app(settings, store=store)) as index:
        yield index


@contextmanager
def serving(app: FastAPI) -> Iterator[Index]:
    """`app` under uvicorn on a free loopback port, for as long as the block runs."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the API server did not start", pytrace=False)
        time.sleep(0.05)
    try:
        yield Index(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _clean_env(tmp: Path) -> dict[str, str]:
    """The host's environment minus every pip/uv setting, plus isolation of our own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        UV_CACHE_DIR=str(tmp / "uv-cache"),
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_PYTHON=sys.executable,
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_CACHE_DIR="1",
    )
    return env


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed", pytrace=False)
    return found


def _run(
    args: list[str], tmp: Path, *, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, env=_clean_env(tmp), capture_output=True, text=True, timeout=300, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result


def _imports(python: Path, tmp: Path) -> str:
    code = "import fake_ext, abi_dep; print(fake_ext.VERSION, abi_dep.VERSION)"
    return _run([str(python), "-c", code], tmp).stdout.strip()


def _uv_venv(tmp: Path) -> Path:
    _run([_uv(), "venv", str(tmp / "venv")], tmp)
    return tmp / "venv" / "bin" / "python"


def _pip_venv(tmp: Path) -> Path:
    _run([sys.executable, "-m", "venv", str(tmp / "venv")], tmp)
    return tmp / "venv" / "bin" / "python"


def _uv_pip(
    python: Path, tmp: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return _run(
        [_uv(), "pip", "install", "--python", str(python), "--no-build", *args], tmp, check=check
    )


def _pip(
    python: Path, tmp: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    base = [str(python), "-m", "pip", "--isolated", "--disable-pip-version-check", "--no-input"]
    return _run([*base, "install", *args], tmp, check=check)


def _index(index: Index, environment: str) -> list[str]:
    return ["--index-url", index.simple(environment), "fake-ext"]


def test_each_environment_page_shows_only_its_own_wheel(index: Index) -> None:
    seen: dict[str, str] = {}
    for environment, pin in PINS.items():
        page_url = index.simple(environment) + "fake-ext/"
        page = httpx.get(page_url, headers={"Accept": JSON_V1})
        assert page.headers["content-type"] == JSON_V1
        (entry,) = page.json()["files"]
        assert entry["filename"] == "fake_ext-0.1.0+abi-py3-none-any.whl"
        wheel = httpx.get(httpx.URL(page_url).join(entry["url"]))
        assert hashlib.sha256(wheel.content).hexdigest() == entry["hashes"]["sha256"]
        metadata = httpx.get(httpx.URL(page_url).join(entry["url"] + ".metadata")).text
        assert f"Requires-Dist: abi-dep=={pin}\n" in metadata
        seen[environment] = entry["hashes"]["sha256"]
    assert seen[ENV_1] != seen[ENV_2]


def test_uv_pip_install(index: Index, tmp_path: Path) -> None:
    python = _uv_venv(tmp_path)
    _uv_pip(python, tmp_path, *_index(index, ENV_1))
    assert _imports(python, tmp_path) == f"{EXT_VERSION} 1.0"


def test_pip_install(index: Index, tmp_path: Path) -> None:
    python = _pip_venv(tmp_path)
    _pip(python, tmp_path, "--index-url", index.simple(ENV_2), "--only-binary", ":all:", "fake-ext")
    assert _imports(python, tmp_path) == f"{EXT_VERSION} 2.0"


def test_pip_find_links(index: Index, tmp_path: Path) -> None:
    python = _pip_venv(tmp_path)
    flat = f"{index.base}/find-links/{ENV_1}/"
    _pip(python, tmp_path, "--no-index", "--find-links", flat, "--only-binary", ":all:", "fake-ext")
    assert _imports(python, tmp_path) == f"{EXT_VERSION} 1.0"


def test_uv_lock_and_sync_with_an_explicit_index(index: Index, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "sample"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["fake-ext", "abi-dep"]\n\n'
        + render_uv_config(index.base, ENV_2, ["fake-ext", "abi-dep"])
    )
    _run([_uv(), "lock"], tmp_path, cwd=project)
    lock = (project / "uv.lock").read_text()
    assert f'source = {{ registry = "{index.simple(ENV_2)}" }}' in lock
    assert 'name = "abi-dep"\nversion = "2.0"' in lock
    _run([_uv(), "sync", "--no-build"], tmp_path, cwd=project)
    assert _imports(project / ".venv" / "bin" / "python", tmp_path) == f"{EXT_VERSION} 2.0"


def test_a_mismatched_abi_pin_fails_to_resolve(index: Index, tmp_path: Path) -> None:
    python = _uv_venv(tmp_path)
    uv = _uv_pip(python, tmp_path, "abi-dep==1.0", *_index(index, ENV_2), check=False)
    assert uv.returncode != 0
    assert "fake-ext depend on abi-dep==2.0" in uv.stderr, uv.stderr
    assert "you require abi-dep==1.0" in uv.stderr, uv.stderr
    assert "unsatisfiable" in uv.stderr, uv.stderr
    pip_python = _pip_venv(tmp_path / "pip")
    pip = _pip(
        pip_python,
        tmp_path,
        *("--index-url", index.simple(ENV_2), "--only-binary", ":all:", "fake-ext", "abi-dep==1.0"),
        check=False,
    )
    assert pip.returncode != 0
    assert "depends on abi-dep==2.0" in pip.stdout + pip.stderr
