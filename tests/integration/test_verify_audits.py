"""Verify's audits in real containers: the CUDA architectures a wheel holds (the CUDA image's
cuobjdump, no GPU needed) and every undefined symbol of a module that cannot load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from enginekit import Builder, leftover_workspaces, make_sdist, managed_containers, request_for

from service.config import Settings, load_settings
from service.errors import BuildFailedError, VerifyFailedError
from worker.executors.docker import DockerExecutor

pytestmark = pytest.mark.docker
DRIVER = Path(__file__).resolve().parents[2] / "worker" / "driver"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wwhome-audits")


@pytest.fixture
def builder(home: Path, cpu_image: str, docker_client: docker.DockerClient) -> Iterator[Builder]:
    settings: Settings = load_settings(home=home, executor="docker")
    yield Builder(settings, DockerExecutor(settings))
    assert managed_containers(docker_client, settings.home) == [], "a container was left behind"
    assert leftover_workspaces(settings) == [], "a workspace was left behind"


def audit_in_image(
    client: docker.DockerClient, image: str, wheel: Path, arch_list: str
) -> tuple[int, dict[str, object]]:
    """`audit.py archs` on a wheel file, in a fresh container of `image`, network off."""
    command = f'python3 /driver/audit.py archs "/wheels/{wheel.name}" "$ARCHS"; echo "exit=$?"'
    out = client.containers.run(
        image,
        ["bash", "-c", command],
        environment={"ARCHS": arch_list},
        volumes={
            str(wheel.parent): {"bind": "/wheels", "mode": "ro"},
            str(DRIVER): {"bind": "/driver", "mode": "ro"},
        },
        network_mode="none",
        remove=True,
        user="1000:1000",
    )
    lines = (out.decode() if isinstance(out, bytes) else str(out)).strip().splitlines()
    return int(lines[-1].removeprefix("exit=")), json.loads(lines[-2])


def test_cuda_wheel_holds_its_archs_and_the_audit_names_a_missing_one(
    builder: Builder, tmp_path: Path, docker_client: docker.DockerClient, cuda_image: str
) -> None:
    sdist = make_sdist("cuda-ext", tmp_path, "cudafix", "0.2.0")
    request = request_for(
        sdist,
        target={"kind": "cuda", "cuda": "13.0"},
        build_env={"TORCH_CUDA_ARCH_LIST": "9.0"},
        verify_smoke="import cudafix; assert cudafix.axpy(2.0, [1, 2], [1, 1]) == [3.0, 5.0]",
    )
    built = builder.build(request)

    cuda = built.manifest["verify"]["cuda"]
    assert cuda["arch_list"] == "9.0"
    assert cuda["sass"] == ["sm_90"]
    assert cuda["ptx"] == []
    module = next(name for name in cuda["modules"] if name.startswith("cudafix/_kernels"))
    assert cuda["modules"][module] == {"sass": ["sm_90"], "ptx": []}
    gpu = built.manifest["verify"]["gpu"]  # no GPU here: the smoke test was not run
    assert gpu == {"present": False, "kernel_run": False, "reason": "no GPU in the verify stage"}
    assert any("cudafix/_kernels" in line and ": 9.0" in line for line in builder.lines)

    code, report = audit_in_image(docker_client, cuda_image, built.wheel, "9.0")
    assert (code, report["ok"]) == (0, True)
    code, report = audit_in_image(docker_client, cuda_image, built.wheel, "8.0;9.0")
    assert code == 1
    assert "lacks 8.0" in str(report["error"])
    assert "9.0," not in str(report["error"])  # only what is missing is named
    code, report = audit_in_image(docker_client, cuda_image, built.wheel, "9.0+PTX")
    assert code == 1
    assert "lacks 9.0+PTX" in str(report["error"])


def test_a_cuda_build_missing_an_arch_fails_verify_naming_it(
    builder: Builder, tmp_path: Path, cuda_image: str
) -> None:
    # The package's own arch list wins over torch's: the wheel claims 8.0 and 9.0, holds 9.0.
    sdist = make_sdist("cuda-ext", tmp_path, "cudafix", "0.3.0")
    request = request_for(
        sdist,
        target={"kind": "cuda", "cuda": "13.0"},
        build_env={"TORCH_CUDA_ARCH_LIST": "8.0;9.0", "CUDAFIX_CUDA_ARCHS": "9.0"},
    )
    with pytest.raises(BuildFailedError, match=r"lacks 8\.0") as info:
        builder.build(request)
    assert info.value.stage == "verify"
    assert isinstance(info.value, VerifyFailedError) and info.value.kind == "cuda_archs"
    assert info.value.exit_code == 18
    assert "TORCH_CUDA_ARCH_LIST=8.0;9.0" in str(info.value)


def test_an_unloadable_module_names_every_undefined_symbol(
    builder: Builder, tmp_path: Path
) -> None:
    sdist = make_sdist("unresolved-ext", tmp_path, "unresolved", "0.1.0")
    with pytest.raises(BuildFailedError) as info:
        builder.build(request_for(sdist))
    assert info.value.stage == "verify"
    assert isinstance(info.value, VerifyFailedError) and info.value.kind == "undefined_symbols"
    message = str(info.value)
    assert "c10::missing_func()" in message
    assert "torch::detail_x::vanishing(int)" in message
    assert "built against another torch" in message
