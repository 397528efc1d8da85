"""The compiler cache with real dockerd, real sccache and the real stores (local, and moto's S3
server): a rebuild compiles only what changed, by sccache's own counts; the cache travels through
S3 to a worker with nothing on disk; projects never share one; a failed build saves nothing;
nvcc's phases are cached; the same request gives the same bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from cachekit import sccache_image, sdist_of
from enginekit import FIXTURES, managed_containers, request_for, run_in_image, torch_find_links
from pydantic import SecretStr
from s3_server import moto_server

from service.config import Settings, StoreSettings, load_settings
from service.errors import BuildFailedError
from service.models import BuildRequest
from service.store import LocalStore, WheelStore, open_store
from worker.cache_scope import Scope
from worker.compiler_cache import Limits, bring, generations, save, scope_prefix
from worker.engine import Hooks
from worker.executors.docker import DockerExecutor
from worker.pipeline import Outcome, build_and_publish

pytestmark = pytest.mark.docker
MOTO_KEY = "testing"
WHEELWRIGHT = str(Path(sys.executable).with_name("wheelwright"))
CHANGED = {"src/torchmulti/csrc/op_scaled.cpp": ("SCALE 2.0", "SCALE 3.0")}
RUN = (
    "import torch, torchmulti; x = torch.tensor([1.0, -4.0, 2.0]);"
    " print(sorted(torchmulti.NAMES), [torchmulti.reduce(n, x) for n in ('sum', 'scaled')])"
)


@pytest.fixture(scope="module")
def cpu_sccache(docker_client: docker.DockerClient) -> str:
    return sccache_image(docker_client, "cpu")


def _settings(home: Path, *folders: Path) -> Settings:
    allowed = [torch_find_links(), *(str(f) for f in folders)]
    return load_settings(home=home, sources={"find_links": allowed}, keep_workspace=False)


def _build(request: BuildRequest, settings: Settings, store: WheelStore) -> tuple[Outcome, str]:
    lines: list[str] = []
    hooks = Hooks(on_line=lines.append)
    outcome = build_and_publish(request, settings, store, DockerExecutor(settings), hooks=hooks)
    assert not outcome.cached
    return outcome, "\n".join(lines)


def _cache(outcome: Outcome) -> dict[str, Any]:
    section: dict[str, Any] = outcome.artifact.manifest["compiler_cache"]
    assert section["enabled"] is True, section
    return section


def _torch_multi(tmp: Path, image: str, tag: str, changes: Any = None) -> BuildRequest:
    archive = sdist_of(FIXTURES / "torch-multi", tmp / tag, "torchmulti", "0.1.0", changes)
    return request_for(
        archive,
        runtime=["torch==2.13.0"],
        index={"find_links": [torch_find_links()]},
        target={"image": image},
    )


def test_a_rebuild_with_one_file_changed_compiles_that_file_alone(
    tmp_path: Path, cpu_sccache: str, docker_client: docker.DockerClient
) -> None:
    store = LocalStore(tmp_path / "store")
    settings = _settings(tmp_path / "home")
    cold, cold_log = _build(_torch_multi(tmp_path, cpu_sccache, "a"), settings, store)
    counts = _cache(cold)["counts"]
    assert (counts["compiles"], counts["hits"], counts["misses"]) == (9, 0, 9)
    assert _cache(cold)["brought"]["generation"] == 0
    assert "compiler cache: saved generation 1" in cold_log

    warm, warm_log = _build(_torch_multi(tmp_path, cpu_sccache, "b", CHANGED), settings, store)
    section = _cache(warm)
    assert section["scope"].partition("#")[0] == "upload:torchmulti@anonymous"
    assert section["scope"] == _cache(cold)["scope"]  # the same inputs: the same scope
    assert section["brought"]["generation"] == 1
    counts = section["counts"]
    assert (counts["compiles"], counts["hits"], counts["misses"]) == (9, 8, 1), counts
    assert "compiler cache: 9 compiles, 8 hits, 1 misses" in warm_log
    assert "compiler cache: saved generation 2" in warm_log
    assert [g for g, _ in generations(store, scope_prefix(section["scope"]))] == [1, 2]

    wheel = store.root / warm.artifact.wheel_key
    out = run_in_image(docker_client, cpu_sccache, RUN, [wheel])
    names = "['absmax', 'max', 'mean', 'min', 'range', 'scaled', 'sum', 'sumsq']"
    assert f"{names} [-1.0, -3.0]" in out, out  # SCALE 3.0: the changed file's code runs
    assert managed_containers(docker_client, settings.home) == []


@pytest.fixture(scope="module")
def s3_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreSettings]:
    with moto_server() as endpoint:
        bucket = f"cache-{uuid.uuid4().hex[:12]}"
        admin = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=MOTO_KEY,
            aws_secret_access_key=MOTO_KEY,
        )
        admin.create_bucket(Bucket=bucket)
        admin.close()
        yield StoreSettings(
            backend="s3",
            s3_bucket=bucket,
            s3_prefix="team",
            s3_endpoint_url=endpoint,
            s3_region="us-east-1",
            s3_access_key_id=MOTO_KEY,
            s3_secret_access_key=SecretStr(MOTO_KEY),
        )


def test_the_cache_travels_through_s3_to_a_worker_with_nothing_on_disk(
    tmp_path: Path, cpu_sccache: str, s3_settings: StoreSettings
) -> None:
    first_home, second_home = tmp_path / "worker-1", tmp_path / "worker-2"
    first = _settings(first_home).model_copy(update={"store": s3_settings})
    store = open_store(first)
    cold, _ = _build(_torch_multi(tmp_path, cpu_sccache, "a"), first, store)
    assert _cache(cold)["counts"]["misses"] == 9

    assert not second_home.exists()  # a fresh worker: no cache, no workspace, nothing
    second = _settings(second_home).model_copy(update={"store": s3_settings})
    request = _torch_multi(tmp_path, cpu_sccache, "b", CHANGED)
    warm, log = _build(request, second, open_store(second))
    section = _cache(warm)
    assert section["brought"]["generation"] == 1
    assert section["brought"]["files"] > 0
    counts = section["counts"]
    assert (counts["hits"], counts["misses"]) == (8, 1), counts
    assert "compiler cache of upload:torchmulti@anonymous: generation 1" in log


def test_projects_never_share_a_cache_and_a_failed_build_saves_nothing(
    tmp_path: Path, cpu_sccache: str
) -> None:
    store = LocalStore(tmp_path / "store")
    folder = tmp_path / "sdists"
    settings = _settings(tmp_path / "home", folder)
    archive = sdist_of(FIXTURES / "modern-ext", folder, "modern_ext", "2.0.0")
    target = {"image": cpu_sccache}
    uploaded, _ = _build(request_for(archive, target=target), settings, store)
    uploaded_scope = _cache(uploaded)["scope"]
    assert uploaded_scope.partition("#")[0] == "upload:modern-ext@anonymous"
    assert _cache(uploaded)["counts"]["misses"] >= 1
    assert [g for g, _ in generations(store, scope_prefix(uploaded_scope))] == [1]

    # the very same sdist through the index (from a find-links folder): the same files at the
    # same paths, so a shared cache would hit; it is another scope, and it starts cold
    from_index = BuildRequest.model_validate(
        {
            "source": {"kind": "requirement", "requirement": "modern-ext==2.0.0"},
            "index": {"find_links": [str(folder)]},
            "target": target,
        }
    )
    indexed, _ = _build(from_index, settings, store)
    section = _cache(indexed)
    assert section["scope"].partition("#")[0] == f"index:modern-ext@file:{folder}"
    assert section["brought"]["generation"] == 0
    assert section["counts"]["hits"] == 0
    assert section["counts"]["misses"] == section["counts"]["compiles"] >= 1

    # a build that compiles something new and then fails (its module cannot be imported)
    broken = sdist_of(
        FIXTURES / "modern-ext",
        tmp_path / "broken",
        "modern_ext",
        "2.0.0",
        changes={
            "src/modern_ext/_fast.c": ("#include", "/* new code */\n#include"),
            "src/modern_ext/__init__.py": ("", "raise ImportError('broken on purpose')\n"),
        },
    )
    before = list(store.list(scope_prefix("upload:modern-ext@anonymous")))
    with pytest.raises(BuildFailedError, match=r"verify|import"):
        _build(request_for(broken, target=target), settings, store)
    after = list(store.list(scope_prefix("upload:modern-ext@anonymous")))
    assert [(o.key, o.size) for o in after] == [(o.key, o.size) for o in before]
    assert sorted(p.name for p in settings.work_dir.iterdir()) == []


def test_nvcc_phases_are_hits_on_the_second_build(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    image = sccache_image(docker_client, "cuda")
    store = LocalStore(tmp_path / "store")
    settings = _settings(tmp_path / "home")

    def request(tag: str, changes: Any = None) -> BuildRequest:
        archive = sdist_of(FIXTURES / "cuda-ext", tmp_path / tag, "cudafix", "0.1.0", changes)
        return request_for(
            archive,
            target={"kind": "cuda", "cuda": "13.0", "image": image},
            build_env={"TORCH_CUDA_ARCH_LIST": "9.0"},
        )

    cold, _ = _build(request("a"), settings, store)
    cold_counts = _cache(cold)["counts"]
    cuda_misses = {k: v for k, v in cold_counts["misses_by_language"].items() if k != "C/C++"}
    assert cuda_misses, cold_counts  # nvcc's phases went through sccache
    # the C file changes, the kernel does not
    change = {"src/cudafix/module.c": ("#include", "/* changed */\n#include")}
    warm, _ = _build(request("b", change), settings, store)
    counts = _cache(warm)["counts"]
    cuda_hits = {k: v for k, v in counts["hits_by_language"].items() if k != "C/C++"}
    assert cuda_hits == cuda_misses, counts
    assert set(counts["misses_by_language"]) == {"C/C++"}, counts


def test_the_same_request_from_two_empty_stores_is_the_same_wheel(
    tmp_path: Path, cpu_sccache: str
) -> None:
    archive = sdist_of(FIXTURES / "torch-ext", tmp_path / "src", "torchfix", "0.3.0")
    request = request_for(
        archive,
        runtime=["torch==2.13.0"],
        index={"find_links": [torch_find_links()]},
        target={"image": cpu_sccache},
    )
    built = []
    for name in ("one", "two"):
        settings = _settings(tmp_path / name)
        outcome, _ = _build(request, settings, LocalStore(tmp_path / name / "store"))
        built.append(outcome.artifact)
    assert built[0].filename == built[1].filename
    assert built[0].sha256 == built[1].sha256
    assert built[0].manifest["reproducibility"]["source_date_epoch"] == 315532800  # tar: 1970


def test_cmake_builds_through_scikit_build_core_hit_too(tmp_path: Path, cpu_sccache: str) -> None:
    store = LocalStore(tmp_path / "store")
    settings = _settings(tmp_path / "home")

    def request(tag: str, changes: Any = None) -> BuildRequest:
        archive = sdist_of(FIXTURES / "cmake-ext", tmp_path / tag, "cmake_ext", "0.1.0", changes)
        return request_for(archive, target={"image": cpu_sccache}, verify_imports=["cmake_ext"])

    cold, _ = _build(request("a"), settings, store)
    cold_counts = _cache(cold)["counts"]
    assert cold_counts["misses"] >= 3, cold_counts  # the three sources, at least
    warm, _ = _build(request("b", {"csrc/offset.c": ("OFFSET 1", "OFFSET 2")}), settings, store)
    counts = _cache(warm)["counts"]
    # everything but the changed file hits: the sources and CMake's own compiler checks
    assert counts["misses"] == 1, counts
    assert counts["hits"] == cold_counts["misses"] - 1, counts


def test_no_compiler_cache_on_the_command_line(tmp_path: Path, cpu_sccache: str) -> None:
    archive = sdist_of(FIXTURES / "modern-ext", tmp_path / "src", "modern_ext", "2.0.0")
    env = {**os.environ, "WHEELWRIGHT_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [WHEELWRIGHT, "build", str(archive), "--image", cpu_sccache, "--no-compiler-cache", "-v"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "compiler cache: off (turned off by the request or its environment)" in done.stderr
    assert "sccache in front of" not in done.stderr
    store = LocalStore(tmp_path / "home" / "store")
    manifests = [o.key for o in store.list("builds/")]
    assert len(manifests) == 1
    section = json.loads(store.get(manifests[0]))["compiler_cache"]
    assert section == {"enabled": False, "reason": "turned off by the request or its environment"}
    assert list(store.list("compiler-cache/")) == []


def test_two_workers_saving_one_generation_in_s3_one_wins(
    tmp_path: Path, s3_settings: StoreSettings
) -> None:
    store = open_store(_settings(tmp_path / "home").model_copy(update={"store": s3_settings}))
    scope = Scope(f"index:race-{uuid.uuid4().hex[:8]}@https://pypi.org/simple")
    limits = Limits(max_bytes=1 << 20, max_members=1_000)
    brought = [bring(store, scope, tmp_path / name, limits) for name in ("a", "b")]
    for name, brought_one in zip(("a", "b"), brought, strict=True):
        (tmp_path / name / "entry").write_bytes(name.encode())
        assert brought_one.generation == 0
    first = save(store, brought[0], tmp_path / "a", limits, tmp_path)
    second = save(store, brought[1], tmp_path / "b", limits, tmp_path)
    assert (first["saved"], second["saved"]) == (True, False)
    assert second["reason"] == "another build saved generation 1 first"
    after = bring(store, scope, tmp_path / "c", limits)
    assert after.generation == 1
    assert (tmp_path / "c" / "entry").read_bytes() == b"a"  # whole, and the winner's
