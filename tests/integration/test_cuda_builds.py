"""CUDA builds in the cuda image as a user sends them, with no GPU: a torch CUDAExtension
package against PyPI's CUDA torch (linked with -lcudart against the image's toolkit), a CMake
CUDA library through scikit-build-core (FindCUDAToolkit finds every library), each audited for
its architectures, imported in verify, and published; and a setup.py that tries to download a
prebuilt binary with the network off, which fails at once and compiles instead.

The torch build downloads PyPI's torch 2.13.0 (a CUDA build, about 3 GB with its nvidia wheels)
through the egress proxy in the runtime stage: no find-links, so the CPU torch of
PIP_FIND_LINKS is not what it gets.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from service.artifacts import lookup
from service.config import Settings, load_settings
from service.layout import wheel_key
from service.models import BuildRequest
from service.store.local import LocalStore
from tests.buildkit import make_sdist, request_for
from worker.engine import Hooks
from worker.executors.docker import DockerExecutor
from worker.pipeline import Outcome, build_and_publish

pytestmark = pytest.mark.docker
CUDA = {"kind": "cuda", "cuda": "13.0"}


def _settings(home: Path) -> Settings:
    return load_settings(home=home, keep_workspace=False)


def _publish(settings: Settings, store: LocalStore, request: BuildRequest) -> tuple[Outcome, str]:
    lines: list[str] = []
    executor = DockerExecutor(settings)
    try:
        outcome = build_and_publish(
            request,
            settings,
            store,
            executor,
            hooks=Hooks(on_line=lines.append),
        )
    except Exception:
        print("\n".join(lines[-150:]))  # the build's log, where pytest shows a failure's output
        raise
    assert not outcome.cached
    return outcome, "\n".join(lines)


def _published(store: LocalStore, outcome: Outcome) -> None:
    artifact = outcome.artifact
    found = lookup(store, artifact.environment, artifact.request_key)
    assert found is not None and found.filename == artifact.filename


def test_torch_cuda_extensions_build_against_pypi_cuda_torch(
    tmp_path: Path, cuda_image: str, cuda_torch_home: Path
) -> None:
    settings = _settings(cuda_torch_home)
    store = LocalStore(tmp_path / "store")
    sdist = make_sdist("torch-cuda-pair", tmp_path, "torchcudapair", "0.1.0")
    request = request_for(
        sdist,
        target=CUDA,
        runtime=["torch==2.13.0"],
        build_env={"TORCH_CUDA_ARCH_LIST": "9.0"},
        timeout_s=3000,
    )
    outcome, log = _publish(settings, store, request)
    manifest = outcome.artifact.manifest

    freeze = manifest["runtime_freeze"]
    assert "torch==2.13.0" in freeze, freeze  # PyPI's CUDA build, not the CPU one (+cpu)
    assert any(line.startswith("nvidia-cuda-runtime==") for line in freeze)
    assert re.search(r"-lcudart\b", log), "BuildExtension links with -lcudart"
    cuda = manifest["verify"]["cuda"]
    assert cuda["arch_list"] == "9.0"
    modules = sorted(cuda["modules"])
    assert [m.split(".")[0] for m in modules] == ["torchcudapair/_add", "torchcudapair/_scale"]
    assert all(cuda["modules"][m] == {"sass": ["sm_90"], "ptx": []} for m in modules)
    assert manifest["verify"]["imported"] == ["torchcudapair"]  # imported with no GPU
    assert manifest["verify"]["gpu"]["present"] is False
    key = wheel_key(outcome.artifact.sha256, outcome.artifact.filename)
    with store.open(key) as fh, zipfile.ZipFile(fh) as zf:
        names = zf.namelist()
    assert sum(n.startswith("torchcudapair/_") and n.endswith(".so") for n in names) == 2
    _published(store, outcome)


def test_cmake_cuda_library_finds_the_whole_toolkit(tmp_path: Path, cuda_image: str) -> None:
    settings = _settings(tmp_path / "home")
    store = LocalStore(tmp_path / "store")
    sdist = make_sdist("cmake-cuda-ext", tmp_path, "cmake_cuda_ext", "0.1.0")
    request = request_for(sdist, target=CUDA, build_env={"TORCH_CUDA_ARCH_LIST": "9.0"})
    outcome, log = _publish(settings, store, request)
    manifest = outcome.artifact.manifest

    for lib in ("cudart", "cublas", "cusparse", "curand", "cufft", "cusolver", "nvrtc"):
        assert re.search(rf"CUDA::{lib}: /\S+/lib{lib}\.so\b", log), f"CUDA::{lib} not found"
    assert re.search(r"CUDA::cuda_driver: /\S+/stubs/libcuda\.so\b", log)
    # the compiler cache's nvcc wrapper was in front, and it compiled the kernel
    assert "sccache in front of" in log and "nvcc" in log.split("sccache in front of", 1)[1]
    stats = manifest["compiler_cache"]
    assert stats["enabled"] is True
    cuda = manifest["verify"]["cuda"]
    assert cuda["arch_list"] == "9.0"
    module = next(m for m in cuda["modules"] if m.startswith("cmake_cuda_ext/_core"))
    assert cuda["modules"][module] == {"sass": ["sm_90"], "ptx": []}
    assert manifest["verify"]["imported"] == ["cmake_cuda_ext"]
    _published(store, outcome)


def test_a_download_with_the_network_off_fails_fast_and_the_build_compiles(
    tmp_path: Path, cpu_image: str
) -> None:
    settings = _settings(tmp_path / "home")
    store = LocalStore(tmp_path / "store")
    sdist = make_sdist("prebuilt-fallback", tmp_path, "prebuiltfix", "0.1.0")
    outcome, log = _publish(settings, store, request_for(sdist))

    assert "==> network: the build looks up github.com (port 443)" in log
    match = re.search(r"prebuilt download failed after ([0-9.]+) s: (.+)", log)
    assert match is not None, log[-3000:]
    assert float(match.group(1)) < 5.0  # at once, not after a timeout
    assert "compiling from source" in log
    assert outcome.artifact.filename.startswith("prebuiltfix-0.1.0-cp")
    _published(store, outcome)
