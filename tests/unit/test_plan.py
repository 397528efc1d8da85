"""Plans are pure: checked here without Docker."""

from __future__ import annotations

import sys
from pathlib import Path

import worker.driver.steps as steps_module
from service.models import parse_request
from worker.plan import GIB, Layout, Machine, make_plan, max_jobs, with_requires, with_wheel

LAYOUT = Layout(
    work="/ww/work", driver="/ww/driver", python="python3", uv="uv", find_links=("/fl/0",)
)


def test_stages_order_network_and_inputs() -> None:
    request = parse_request(
        {
            "source": {"kind": "requirement", "requirement": "x==1"},
            "runtime": ["torch==2.13.0"],
            "build_requires": ["ninja"],
            "config_settings": {"k": "v"},
            "index": {"extra_index_urls": ["https://download.pytorch.org/whl/cpu"]},
        }
    )
    plan = make_plan(
        request, LAYOUT, Machine(cpus=16, memory_bytes=64 * GIB), source_root="src/x-1"
    )
    names = ["runtime", "build_deps", "requires", "requires_install", "build", "verify"]
    assert [s.name for s in plan.stages] == names
    assert [s.network for s in plan.stages] == [True, True, False, True, False, False]
    # only the runtime stage (wheels only, no package code) may write the shared cache
    assert [s.cache for s in plan.stages] == ["shared", "build", "none", "build", "none", "none"]
    assert plan.stage("requires").with_network().network
    runtime = plan.stage("runtime").request
    assert runtime["runtime"] == ["torch==2.13.0"]
    assert runtime["snapshot"] == "/ww/work/runtime"
    assert "--find-links" in runtime["index_args"] and "/fl/0" in runtime["index_args"]
    assert runtime["index_args"][-4:-2] == ["--index-strategy", "unsafe-best-match"]
    deps = plan.stage("build_deps").request
    assert deps["source"] == "/ww/work/src/x-1"
    assert deps["extra"] == ["ninja"] and plan.stage("requires").request["config"] == {"k": "v"}
    assert plan.stage("build").env["MAX_JOBS"] == "16"
    assert plan.stage("verify").request["snapshot"] == "/ww/work/runtime"
    argv = plan.stage("build").argv(LAYOUT)
    assert argv == [
        "python3",
        "/ww/driver/run.py",
        "build",
        "/ww/work/io/build.request.json",
        "/ww/work/io/build.result.json",
    ]


def test_cuda_defaults_and_request_overrides() -> None:
    request = parse_request(
        {
            "source": {"kind": "requirement", "requirement": "x==1"},
            "target": {"kind": "cuda"},
            "build_env": {"TORCH_CUDA_ARCH_LIST": "9.0", "MAX_JOBS": "3"},
        }
    )
    env = make_plan(request, LAYOUT, Machine(cpus=2, memory_bytes=24 * GIB)).build_env
    assert env == {"MAX_JOBS": "3", "TORCH_CUDA_ARCH_LIST": "9.0", "FORCE_CUDA": "1"}


def test_max_jobs_fits_cores_and_memory() -> None:
    assert max_jobs(Machine(cpus=64, memory_bytes=16 * GIB)) == 8
    assert max_jobs(Machine(cpus=2, memory_bytes=24 * GIB)) == 2
    assert max_jobs(Machine(cpus=8, memory_bytes=GIB)) == 1


def test_verify_gets_the_wheel_later() -> None:
    request = parse_request({"source": {"kind": "requirement", "requirement": "x==1"}})
    plan = make_plan(request, LAYOUT, Machine(2, GIB))
    assert with_wheel(plan.verify, "/ww/work/out/x.whl").request["wheel"] == "/ww/work/out/x.whl"
    assert plan.verify.request["wheel"] is None  # the plan itself is unchanged
    install = with_requires(plan.requires_install, ["torch"])
    assert (
        install.request["requires"] == ["torch"] and plan.requires_install.request["requires"] == []
    )


def test_cuda_wheels_in_the_venv_join_the_compiler_paths(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(steps_module.__file__).parent))
    nvidia = tmp_path / "lib" / "python3.11" / "site-packages" / "nvidia"
    for part in ("cublas/include", "cublas/lib", "cudnn/include"):
        (nvidia / part).mkdir(parents=True)
    paths = steps_module.venv_cuda_paths(str(tmp_path))
    assert paths["CPATH"].split(":")[:2] == [
        str(nvidia / "cublas" / "include"),
        str(nvidia / "cudnn" / "include"),
    ]
    assert paths["LIBRARY_PATH"].split(":")[0] == str(nvidia / "cublas" / "lib")
    assert steps_module.venv_cuda_paths(str(tmp_path / "empty")) == {}


def test_verify_gets_the_arch_list_and_the_smoke_test() -> None:
    request = parse_request(
        {
            "source": {"kind": "requirement", "requirement": "x==1"},
            "target": {"kind": "cuda"},
            "build_env": {"TORCH_CUDA_ARCH_LIST": "9.0"},
            "verify_smoke": "import x; x.run_on_gpu()",
        }
    )
    verify = make_plan(request, LAYOUT, Machine(cpus=2, memory_bytes=8 * GIB)).stage("verify")
    assert verify.request["cuda"] is True
    assert verify.request["cuda_arch_list"] == "9.0"
    assert verify.request["smoke"] == "import x; x.run_on_gpu()"
    cpu = parse_request({"source": {"kind": "requirement", "requirement": "x==1"}})
    plain = make_plan(cpu, LAYOUT, Machine(cpus=2, memory_bytes=8 * GIB)).stage("verify")
    assert plain.request["cuda_arch_list"] is None and plain.request["smoke"] is None


def test_no_index_leaves_only_the_find_links() -> None:
    request = parse_request(
        {"source": {"kind": "requirement", "requirement": "x==1"}, "index": {"no_index": True}}
    )
    layout = Layout(
        work="/w", driver="/d", python="python3", uv="uv", find_links=("/fl/0",), host_packages=True
    )
    plan = make_plan(request, layout, Machine(cpus=2, memory_bytes=8 * GIB))
    runtime = plan.stage("runtime").request
    assert runtime["index_args"] == ["--no-index", "--find-links", "/fl/0"]
    assert runtime["inherit_packages"] is True
