"""The build images, checked in real containers run the way builds run them: as builder, with no
capabilities and (unless a stage needs it) no network."""

from __future__ import annotations

import re
from typing import Any

import docker
import pytest

from service.errors import ImageError
from worker.images import ensure_image, image_facts, image_tag

pytestmark = pytest.mark.docker


def run(client: docker.DockerClient, image: str, script: str, **options: Any) -> str:
    """Run a bash script in a hardened, networkless container; return its stdout."""
    settings: dict[str, Any] = {
        "user": "builder",
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "environment": {"UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1"},
    }
    settings.update(options)
    out = client.containers.run(
        image, ["bash", "-euo", "pipefail", "-c", script], remove=True, **settings
    )
    assert isinstance(out, bytes)
    return out.decode()


def facts(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def test_image_tag_formats() -> None:
    assert image_tag("cpu", "3.11") == "wheelwright/build-cpu:py3.11"
    assert image_tag("cuda", "3.12", "13.0") == "wheelwright/build-cuda:cu13.0-py3.12"
    with pytest.raises(ImageError, match="CUDA version"):
        image_tag("cuda", "3.11")
    with pytest.raises(ImageError, match=r"3\.11; rm"):
        image_tag("cpu", "3.11; rm")


def test_cpu_image_has_the_build_toolchain(
    docker_client: docker.DockerClient, cpu_image: str
) -> None:
    script = r"""
        echo "uid=$(id -u)"; echo "gid=$(id -g)"; echo "user=$(id -un)"; echo "home=$HOME"
        echo "python=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        python3 -m venv /tmp/venv
        /tmp/venv/bin/python -c 'import sys; assert sys.prefix != sys.base_prefix' && echo "venv=ok"
        printf '#include <Python.h>\nint main(void) { return Py_IsInitialized(); }\n' > /tmp/t.c
        gcc $(python3-config --includes) -c /tmp/t.c -o /tmp/t.o && echo "headers=ok"
        uv venv -q --python "$(command -v python3)" /tmp/uv-venv && echo "uv-venv=ok"
        echo "uv=$(uv --version)"; echo "ninja=$(ninja --version)"
        echo "gcc=$(gcc -dumpversion)"; echo "gxx=$(g++ -dumpversion)"
        echo "make=$(command -v make)"
        echo "git=$(git --version)"
        touch /ww/probe && echo "ww=writable"
        echo "ca=$SSL_CERT_FILE"; test -s "$PIP_CERT"
    """
    got = facts(run(docker_client, cpu_image, script))
    assert (got["uid"], got["gid"], got["user"]) == ("1000", "1000", "builder")
    assert got["home"] == "/home/builder"
    assert got["python"] == "3.11"
    assert got["venv"] == got["headers"] == got["uv-venv"] == "ok"
    assert got["uv"].startswith("uv ")
    assert got["ninja"]
    assert got["gcc"] and got["gxx"] and got["make"]
    assert got["git"].startswith("git version")
    assert got["ww"] == "writable"
    assert got["ca"] == "/etc/ssl/certs/ca-certificates.crt"


def test_cpu_image_runs_as_uid_1000_and_defaults_to_root(
    docker_client: docker.DockerClient, cpu_image: str
) -> None:
    assert run(docker_client, cpu_image, "id -u; id -g; id -un", user="1000:1000").split() == [
        "1000",
        "1000",
        "builder",
    ]
    assert run(docker_client, cpu_image, "id -u", user="").strip() == "0"


def test_cpu_image_labels(docker_client: docker.DockerClient, cpu_image: str) -> None:
    got = image_facts(docker_client, cpu_image)
    assert got["kind"] == "cpu"
    assert got["python"] == "3.11"
    assert "cuda" not in got
    assert got["id"] == docker_client.images.get(cpu_image).id
    assert ensure_image(docker_client, "cpu", "3.11") == got["id"]  # present: no rebuild


def test_cuda_image_compiles_for_sm90_without_a_gpu(
    docker_client: docker.DockerClient, cuda_image: str
) -> None:
    script = r"""
        cat > /tmp/k.cu <<'CU'
#include <cstdio>
__global__ void axpy(int n, float a, const float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
int main() {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    std::printf("devices=%d %s\n", count, cudaGetErrorName(err));
    if (err == cudaSuccess && count > 0) { axpy<<<1, 32>>>(0, 2.0f, nullptr, nullptr); }
    return 0;
}
CU
        cd /tmp && nvcc -arch=sm_90 -o /tmp/k /tmp/k.cu
        echo "nvcc=$(command -v nvcc)"; echo "cuda_home=$CUDA_HOME"
        test -e "$CUDA_HOME/lib64" && echo "lib64=ok"
        test -f "$CUDA_HOME/include/cuda_runtime.h" && echo "headers=ok"
        test -x /tmp/k && echo "binary=ok"
        /tmp/k
    """
    got = facts(run(docker_client, cuda_image, script))
    assert got["nvcc"] == "/usr/local/cuda/bin/nvcc"
    assert got["cuda_home"] == "/usr/local/cuda"
    assert got["lib64"] == got["headers"] == got["binary"] == "ok"
    # It links (cudart is static) and runs; with no GPU or driver it reports an error by name.
    assert re.fullmatch(r"\d+ cuda\w+", got["devices"]), got["devices"]


def test_cuda_image_links_every_toolkit_library(
    docker_client: docker.DockerClient, cuda_image: str
) -> None:
    """What a torch CUDAExtension or a CMake CUDA project links: each library by its
    unversioned name (-lcudart, ...), the driver stub at link time only."""
    libs = "cudart cublas cublasLt cusparse curand cufft cusolver nvrtc nvJitLink"
    script = rf"""
        cat > /tmp/l.cu <<'CU'
#include <cublas_v2.h>
#include <cuda.h>
#include <cufft.h>
#include <curand.h>
#include <cusolverDn.h>
#include <cusparse.h>
#include <nvrtc.h>
int main() {{
    cublasHandle_t b; cusparseHandle_t s; cusolverDnHandle_t d; curandGenerator_t g;
    cufftHandle f; nvrtcProgram p;
    cuInit(0); cublasCreate(&b); cusparseCreate(&s); cusolverDnCreate(&d);
    curandCreateGenerator(&g, CURAND_RNG_PSEUDO_DEFAULT); cufftCreate(&f);
    nvrtcCreateProgram(&p, "", 0, 0, 0, 0);
    return 0;
}}
CU
        for lib in {libs}; do
            test -e "$CUDA_HOME/lib64/lib$lib.so" && echo "so_$lib=ok"
        done
        flags=$(for lib in {libs}; do printf -- '-l%s ' "$lib"; done)
        cd /tmp && nvcc -o /tmp/l /tmp/l.cu -L"$CUDA_HOME/lib64/stubs" -lcuda $flags \
            && echo "linked=ok"
        readelf -d "$CUDA_HOME/lib64/stubs/libcuda.so" | grep -q 'SONAME.*libcuda.so.1' \
            && echo "stub=ok"
        ldd /tmp/l | grep -q 'libcuda.so.1 => not found' && echo "stub_at_run_time=absent"
    """
    got = facts(run(docker_client, cuda_image, script))
    for lib in libs.split():
        assert got.get(f"so_{lib}") == "ok", f"no unversioned lib{lib}.so"
    assert got["linked"] == got["stub"] == "ok"
    assert got["stub_at_run_time"] == "absent"  # the driver stub is never on the library path


def test_cuda_image_labels(docker_client: docker.DockerClient, cuda_image: str) -> None:
    got = image_facts(docker_client, cuda_image)
    assert (got["kind"], got["python"], got["cuda"]) == ("cuda", "3.11", "13.0")


def test_offline_base_only_offers_python_311(docker_client: docker.DockerClient) -> None:
    with pytest.raises(ImageError, match=r"Python 3\.12"):
        ensure_image(docker_client, "cpu", "3.12", offline=True, rebuild=True)


def test_image_facts_rejects_foreign_images(docker_client: docker.DockerClient) -> None:
    with pytest.raises(ImageError, match="does not exist"):
        image_facts(docker_client, "wheelwright/no-such-image:nope")
