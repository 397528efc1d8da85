"""The engine end to end in real containers: packages that cannot be built in isolation."""

from __future__ import annotations

import json
import os
import socket
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest
from enginekit import (
    FIXTURES,
    Builder,
    isolated_build_fails,
    leftover_workspaces,
    make_sdist,
    managed_containers,
    request_for,
    run_in_image,
    torch_find_links,
)
from hostilekit import hostile_sdist

from service.config import Settings, load_settings
from service.keys import canonical_json
from worker.executors.docker import DockerExecutor

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home per module: the package cache is shared, so later builds are warm."""
    return tmp_path_factory.mktemp("wwhome")


@pytest.fixture
def settings(home: Path) -> Settings:
    operator_wheels = os.environ.get("PIP_FIND_LINKS", "/opt/wheels")  # the torch wheel's folder
    return load_settings(home=home, executor="docker", sources={"find_links": [operator_wheels]})


@pytest.fixture
def builder(
    settings: Settings, cpu_image: str, docker_client: docker.DockerClient
) -> Iterator[Builder]:
    yield Builder(settings, DockerExecutor(settings))
    assert managed_containers(docker_client, settings.home) == [], (
        "a build container was left behind"
    )
    assert leftover_workspaces(settings) == [], "a workspace was left behind"


def test_numpy_extension_that_fails_in_isolation_builds_and_runs(
    builder: Builder, tmp_path: Path, docker_client: docker.DockerClient, cpu_image: str
) -> None:
    output = isolated_build_fails(FIXTURES / "numpy-ext", tmp_path)
    assert "No module named 'numpy'" in output

    sdist = make_sdist("numpy-ext", tmp_path, "npext", "1.0.0")
    built = builder.build(request_for(sdist, runtime=["numpy"]))

    assert built.wheel.name == "npext-1.0.0-cp311-cp311-linux_x86_64.whl"
    manifest = built.manifest
    assert [s["name"] for s in manifest["stages"]] == [
        "fetch",
        "runtime",
        "build_deps",
        "requires",
        "requires_install",
        "build",
        "verify",
    ]
    assert all(s["ok"] and s["seconds"] >= 0 for s in manifest["stages"])
    assert {s["name"]: s["network"] for s in manifest["stages"]}["build"] is False
    assert any(line.startswith("numpy==") for line in manifest["runtime_freeze"])
    assert any(line.startswith("setuptools==") for line in manifest["build_freeze"])
    assert manifest["verify"]["imported"] == ["npext"]
    assert manifest["image"]["image_id"].startswith("sha256:")
    assert manifest["source"]["sha256"] == manifest["inputs"]["source"]["sha256"]
    assert "wheel" not in manifest  # publish writes that section, of the wheel it stores
    assert built.results.runtime["freeze"] == manifest["runtime_freeze"]
    assert built.results.build["wheel"] == built.wheel.name
    log = built.log_path.read_text()
    for stage in ("fetch", "runtime", "build_deps", "requires", "requires_install", "build"):
        assert f"===> [{stage}] start" in log
        assert f"<=== [{stage}] ok in" in log

    out = run_in_image(
        docker_client, cpu_image, "import npext; print(npext.total([1.5, 2.5, 3.0]))", [built.wheel]
    )
    assert out.strip().splitlines()[-1] == "7.0"


def test_modern_pyproject_package_with_declared_build_deps(
    builder: Builder, tmp_path: Path, docker_client: docker.DockerClient, cpu_image: str
) -> None:
    sdist = make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0")
    built = builder.build(request_for(sdist))

    with zipfile.ZipFile(built.wheel) as zf:
        metadata = zf.read("modern_ext-2.0.0.dist-info/METADATA").decode()
    version = metadata.split("Metadata-Version:", 1)[1].split()[0]
    assert tuple(int(x) for x in version.split(".")) >= (2, 2)
    assert built.manifest["build_requires"]["static"] == ["setuptools>=77"]
    out = run_in_image(
        docker_client, cpu_image, "import modern_ext; print(modern_ext.triple(14))", [built.wheel]
    )
    assert out.strip().splitlines()[-1] == "42"


def test_cuda_kernel_compiled_by_nvcc_without_a_gpu(
    builder: Builder, tmp_path: Path, docker_client: docker.DockerClient, cuda_image: str
) -> None:
    sdist = make_sdist("cuda-ext", tmp_path, "cudafix", "0.1.0")
    request = request_for(
        sdist, target={"kind": "cuda", "cuda": "13.0"}, build_env={"TORCH_CUDA_ARCH_LIST": "9.0"}
    )
    built = builder.build(request)

    assert built.manifest["build_env"]["TORCH_CUDA_ARCH_LIST"] == "9.0"
    assert built.manifest["build_env"]["FORCE_CUDA"] == "1"
    assert built.manifest["inputs"]["target"]["kind"] == "cuda"
    assert any("nvcc" in line and "sm_90" in line for line in builder.lines)
    script = "import cudafix; print(cudafix.compiled_archs(), cudafix.device_count() < 0)"
    out = run_in_image(docker_client, cuda_image, script, [built.wheel])
    assert out.strip().splitlines()[-1] == "9.0 True"  # built for sm_90; no GPU here


def test_torch_cpp_extension_against_pinned_torch(
    builder: Builder, tmp_path: Path, docker_client: docker.DockerClient, cpu_image: str
) -> None:
    find_links = torch_find_links()
    sdist = make_sdist("torch-ext", tmp_path, "torchfix", "0.3.0")
    request = request_for(
        sdist, runtime=["torch==2.13.0"], index={"find_links": [find_links]}, timeout_s=1800
    )
    built = builder.build(request)

    assert "torch==2.13.0+cpu" in built.manifest["runtime_freeze"]
    assert built.manifest["verify"]["imported"] == ["torchfix"]
    script = (
        "import torch, torchfix; "
        "print(torchfix.scaled_add(torch.ones(3), torch.arange(3.0), 2.0).tolist())"
    )
    out = run_in_image(docker_client, cpu_image, script, [built.wheel])
    assert out.strip().splitlines()[-1] == "[1.0, 3.0, 5.0]"


def test_same_request_twice_gives_identical_inputs_and_key(
    builder: Builder, tmp_path: Path
) -> None:
    sdist = make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0")
    first = builder.build(request_for(sdist))
    second = builder.build(request_for(sdist))

    assert first.build_id != second.build_id
    assert first.request_key == second.request_key
    assert first.environment == second.environment
    assert canonical_json(first.manifest["inputs"]) == canonical_json(second.manifest["inputs"])
    assert json.loads(canonical_json(first.manifest["inputs"]))["source"]["path"] == sdist.name


@contextmanager
def host_listener() -> Iterator[tuple[int, list[str]]]:
    """A TCP port on the host's loopback that greets whoever connects; the peers it saw."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[str] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            accepted.append(str(peer))
            with conn:
                conn.sendall(b"host-listener\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        done.set()
        thread.join()
        server.close()


def test_a_backend_that_needs_the_network_to_answer_is_asked_again_online(
    builder: Builder, tmp_path: Path
) -> None:
    """The package's code is asked offline first; only when that fails, online (still without
    the shared cache), and the manifest says so."""
    with host_listener() as (port, accepted):
        attacks = ["needs_network", f"host_network:{port}"]
        sdist = hostile_sdist(tmp_path, attacks, name="online", version="1.0")
        built = builder.build(request_for(sdist))
    assert built.manifest["isolation"]["requires_network"] is True
    log = built.log_path.read_text() if built.log_path.exists() else "\n".join(builder.lines)
    assert "failed offline; asking the backend again with the network on" in log
    # online means through the worker's egress proxy: the public index, never this host
    assert "network: through the worker's egress proxy" in log
    assert "probe network: reached pypi.org" in log
    assert "probe host loopback: refused" in log
    assert "probe host 127.0.0.1 through the proxy: refused (HTTPError)" in log
    assert "probe host localhost through the proxy: refused (HTTPError)" in log
    assert "egress refused: 127.0.0.1 is 127.0.0.1, an address of this host" in log
    assert "WORKED" not in log
    assert accepted == [], "a build reached a port of the host"
    plain = builder.build(request_for(make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0")))
    assert plain.manifest["isolation"]["requires_network"] is False
