"""The compiler cache without Docker: scopes, the plan, sccache's figures, the store round trip
(generations, conditional writes, eviction, hostile archives) and the driver's wrappers."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from service.artifacts.checks import Expected
from service.config import load_settings
from service.environments import apply_environment
from service.jobs.memory import MemoryJobs
from service.metrics import record_compiler_cache, render
from service.models import BuildRequest, EnvironmentSpec, parse_request
from service.store import LocalStore
from service.store.base import check_key
from worker import compiler_cache as cc
from worker.driver import compilercache as driver
from worker.plan import BuildInputs, Layout, Machine, make_plan

#: What `sccache --show-stats --stats-format=json` printed (0.16.0) after an nvcc build.
STATS = {
    "stats": {
        "compile_requests": 14,
        "requests_unsupported_compiler": 0,
        "requests_not_compile": 3,
        "requests_not_cacheable": 2,
        "cache_errors": {"counts": {}, "adv_counts": {}},
        "cache_hits": {"counts": {"C/C++": 7, "CUDA": 1, "PTX": 1}, "adv_counts": {}},
        "cache_misses": {"counts": {"C/C++": 1}, "adv_counts": {}},
        "cache_read_errors": 0,
        "cache_writes": 1,
        "not_cached": {"multiple input files": 2},
    },
    "cache_size": 4096,
    "version": "0.16.0",
}


def _request(source: dict[str, object]) -> BuildRequest:
    return parse_request({"source": source})


def test_scopes_name_the_project_and_the_kind_of_source() -> None:
    index = _request({"kind": "requirement", "requirement": "Torch_Scatter==2.1.2"})
    upload = _request({"kind": "archive", "path": "/x/torch_scatter-2.1.2.tar.gz"})
    git = _request({"kind": "git", "url": "ssh://git@GitHub.com/Acme/Fused.git", "ref": "main"})
    https = _request({"kind": "git", "url": "https://github.com/acme/fused", "ref": "v1"})
    named = Expected(project="torch-scatter", version="2.1.2")
    assert cc.project_scope(index, named) == "index:torch-scatter"
    assert cc.project_scope(upload, named) == "upload:torch-scatter"
    assert cc.project_scope(git, Expected()) == "git:github.com/acme/fused"
    assert cc.project_scope(https, named) == "git:github.com/acme/fused"
    assert cc.project_scope(upload, Expected()) is None
    prefixes = {cc.scope_prefix(s) for s in ("index:a", "upload:a", "index:b", "git:x/a")}
    assert len(prefixes) == 4
    for prefix in prefixes:
        check_key(prefix.rstrip("/"))
    # a slug that collides still names another scope: the hash tells them apart
    assert cc.scope_prefix("index:a-b") != cc.scope_prefix("index:a.b")


def test_the_build_stage_alone_gets_the_cache_and_every_stage_the_source_time() -> None:
    request = parse_request({"source": {"kind": "directory", "path": "/src"}})
    layout = Layout(work="/ww/work", driver="/d", python="python3", uv="uv", compiler_cache="/c")
    inputs = BuildInputs(source_date_epoch=1700000000, compiler_cache_bytes=1 << 30)
    plan = make_plan(request, layout, Machine(cpus=2, memory_bytes=8 << 30), inputs=inputs)
    build = plan.stage("build")
    assert build.request["compiler_cache"] == {
        "dir": "/c",
        "max_bytes": 1 << 30,
        "wrappers": "/ww/work/tmp/compiler-cache/bin",
    }
    assert build.env["SOURCE_DATE_EPOCH"] == "1700000000"
    others = [s for s in plan.stages if s.name != "build"]
    assert all("compiler_cache" not in s.request for s in others)
    off = make_plan(request, layout, Machine(cpus=2, memory_bytes=8 << 30))
    assert off.stage("build").request["compiler_cache"] is None
    no_mount = Layout(work="/ww/work", driver="/d", python="python3", uv="uv")
    assert (
        make_plan(request, no_mount, Machine(2, 8 << 30), inputs=inputs)
        .stage("build")
        .request["compiler_cache"]
        is None
    )


def test_figures_are_sccaches_own_counts() -> None:
    counts = cc.figures(STATS)
    assert counts is not None
    assert (counts["compiles"], counts["hits"], counts["misses"]) == (10, 9, 1)
    assert counts["hits_by_language"] == {"C/C++": 7, "CUDA": 1, "PTX": 1}
    assert counts["not_cacheable"] == 2
    assert counts["not_cacheable_reasons"] == {"multiple input files": 2}
    assert counts["cache_writes"] == 1
    assert cc.figures({"error": "sccache gave no statistics"}) is None
    assert cc.figures(None) is None


def _fill(folder: Path, files: dict[str, bytes], mtime: float = 1_000_000) -> None:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))


def test_save_and_bring_round_trip_by_generation_with_conditional_writes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    empty = cc.bring(store, "index:demo", tmp_path / "a", 1 << 20)
    assert empty.generation == 0
    _fill(tmp_path / "a", {"1/2/entry": b"object code", "preprocessor/x": b"p"})
    first = cc.save(store, empty, tmp_path / "a", 1 << 20, tmp_path)
    assert first["saved"] and first["generation"] == 1 and first["files"] == 2
    # a second worker that brought the same (empty) generation loses the conditional write
    _fill(tmp_path / "b", {"1/2/other": b"x"})
    lost = cc.save(store, empty, tmp_path / "b", 1 << 20, tmp_path)
    assert not lost["saved"]
    assert "generation 1" in lost["reason"]
    brought = cc.bring(store, "index:demo", tmp_path / "c", 1 << 20)
    assert (brought.generation, brought.files) == (1, 2)
    assert (tmp_path / "c" / "1/2/entry").read_bytes() == b"object code"
    assert not (tmp_path / "c" / "1/2/other").exists()
    # another project sees none of it
    assert cc.bring(store, "upload:demo", tmp_path / "d", 1 << 20).generation == 0
    # later generations replace earlier ones; the two newest are kept
    for _ in range(3):
        brought = cc.bring(store, "index:demo", tmp_path / f"g{brought.generation}", 1 << 20)
        cc.save(store, brought, tmp_path / f"g{brought.generation}", 1 << 20, tmp_path)
    kept = [g for g, _key in cc.generations(store, cc.scope_prefix("index:demo"))]
    assert kept == [3, 4]


def test_trim_evicts_the_least_recently_used_first(tmp_path: Path) -> None:
    _fill(tmp_path, {"old": b"a" * 100}, mtime=1000)
    _fill(tmp_path, {"mid": b"b" * 100}, mtime=2000)
    _fill(tmp_path, {"new": b"c" * 100}, mtime=3000)
    (tmp_path / "link").symlink_to("/etc/passwd")
    assert cc.trim(tmp_path, 250) == (1, 100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid", "new"]


def test_a_stored_cache_brings_only_regular_files_inside_the_folder(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        data = b"ok"
        good = tarfile.TarInfo("1/entry")
        good.size = len(data)
        tar.addfile(good, io.BytesIO(data))
    store.put(f"{cc.scope_prefix('index:evil')}0000000001.tar", payload.getvalue())
    brought = cc.bring(store, "index:evil", tmp_path / "in", 1 << 20)
    assert brought.files == 1
    assert sorted(p.name for p in (tmp_path / "in").rglob("*")) == ["1", "entry"]
    escaping = io.BytesIO()
    with tarfile.open(fileobj=escaping, mode="w") as tar:
        bad = tarfile.TarInfo("../outside")
        bad.size = 1
        tar.addfile(bad, io.BytesIO(b"x"))
    store.put(f"{cc.scope_prefix('index:evil')}0000000002.tar", escaping.getvalue())
    said: list[str] = []
    cold = cc.bring_or_cold(store, "index:evil", tmp_path / "in2", 1 << 20, said.append)
    assert cold.generation == 0
    assert "starting cold" in said[0]
    assert not (tmp_path / "outside").exists()


def test_why_off_and_save_reasons() -> None:
    request = parse_request({"source": {"kind": "directory", "path": "/src"}})
    assert cc.why_off(request, True, True, True) == ""
    assert "settings" in cc.why_off(request, False, True, True)
    off = request.model_copy(update={"compiler_cache": False})
    assert "request" in cc.why_off(off, True, True, True)
    assert "executor" in cc.why_off(request, True, False, True)
    warm = cc.Brought("index:a", cc.scope_prefix("index:a"), 3)
    counts = cc.figures(STATS)
    assert counts is not None
    assert cc.save_reason(warm, {**counts, "cache_writes": 0}).startswith("nothing new")
    assert cc.save_reason(warm, counts) == ""
    assert cc.save_reason(warm, None) != ""


def test_an_environment_can_turn_the_cache_off(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path,
        environments={"plain": EnvironmentSpec(compiler_cache=False), "cached": EnvironmentSpec()},
    )
    source = {"kind": "requirement", "requirement": "a==1"}
    off = apply_environment(parse_request({"source": source, "environment": "plain"}), settings)
    on = apply_environment(parse_request({"source": source, "environment": "cached"}), settings)
    asked_off = parse_request({"source": source, "environment": "cached", "compiler_cache": False})
    assert (off.compiler_cache, on.compiler_cache) == (False, True)
    assert apply_environment(asked_off, settings).compiler_cache is False


def test_driver_wrappers_put_sccache_in_front_of_compilers_and_nvcc(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake = tmp_path / "sccache"
    fake.write_text(f'#!/bin/sh\necho "$PATH|$*" >> {calls}\n')
    fake.chmod(0o755)
    bin_dir, cuda = tmp_path / "bin", tmp_path / "cuda"
    for tool in (bin_dir / "gcc", cuda / "bin" / "nvcc", cuda / "bin" / "ptxas"):
        tool.parent.mkdir(parents=True, exist_ok=True)
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    (cuda / "include").mkdir()
    env = driver.make_wrappers(str(fake), tmp_path / "wrap", str(bin_dir), str(cuda))
    assert env["PATH"].startswith(str(tmp_path / "wrap"))
    assert env["TORCH_NO_COMPILER_WRAPPER"] == "1"
    shadow = Path(env["CUDA_HOME"])
    assert (shadow / "include").resolve() == (cuda / "include").resolve()
    assert (shadow / "bin" / "ptxas").resolve() == (cuda / "bin" / "ptxas").resolve()
    subprocess.run([str(tmp_path / "wrap" / "gcc"), "-c", "a b.c"], check=True)
    subprocess.run([str(shadow / "bin" / "nvcc"), "-c", "k.cu"], check=True)
    subprocess.run([env["PYTORCH_NVCC"], "-c", "k.cu"], check=True)
    lines = calls.read_text().splitlines()
    assert lines[0].endswith(f"|{bin_dir / 'gcc'} -c a b.c")
    # nvcc runs with the real compilers on PATH: sccache caches its phases itself
    assert (
        lines[1] == f"{bin_dir}|{(cuda / 'bin' / 'nvcc').resolve()} -c k.cu"
        or lines[1] == f"{bin_dir}|{cuda / 'bin' / 'nvcc'} -c k.cu"
    )
    assert lines[2] == lines[1]


@pytest.mark.parametrize("config", [None, {}])
def test_no_cache_config_starts_nothing(config: dict[str, object] | None) -> None:
    assert driver.start(config) is None
    assert driver.stop(None) is None


def test_metrics_add_up_each_builds_counts() -> None:
    jobs = MemoryJobs()
    counts = cc.figures(STATS)
    record_compiler_cache(jobs, {"compiler_cache": {"enabled": True, "counts": counts}})
    record_compiler_cache(jobs, {"compiler_cache": {"enabled": True, "counts": counts}})
    record_compiler_cache(jobs, {"compiler_cache": {"enabled": False, "reason": "off"}})
    text = render(jobs, None).decode()
    assert 'wheelwright_compiler_cache_compiles_total{result="hits"} 18.0' in text
    assert 'wheelwright_compiler_cache_compiles_total{result="misses"} 2.0' in text
    assert 'wheelwright_compiler_cache_compiles_total{result="not_cacheable"} 4.0' in text
    assert "wheelwright_compiler_cache_builds_total 2.0" in text


@pytest.mark.parametrize("starts", [True, False])
def test_driver_start_and_stop_with_a_fake_sccache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starts: bool
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "gcc").write_text("#!/bin/sh\n")
    (tools / "gcc").chmod(0o755)
    stats = '{"stats": {"compile_requests": 1, "cache_hits": {"counts": {"C/C++": 1}}}}'
    fake = tools / "sccache"
    fake.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --start-server) exit {0 if starts else 1};;'
        f" --show-stats) echo '{stats}';; esac\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(driver, "SCCACHE_CANDIDATES", (str(fake),))
    monkeypatch.setattr(os, "environ", {**os.environ, "PATH": str(tools)})
    monkeypatch.delitem(os.environ, "CUDA_HOME", raising=False)
    config = {"dir": str(tmp_path / "cache"), "max_bytes": 1 << 20, "wrappers": str(tmp_path / "w")}
    active = driver.start(config)
    if not starts:
        assert active is None
        assert os.environ["PATH"] == str(tools)  # the compilers as they were
        return
    assert active is not None
    assert os.environ["PATH"] == f"{tmp_path / 'w'}{os.pathsep}{tools}"
    assert os.environ["SCCACHE_DIR"] == str(tmp_path / "cache")
    assert os.environ["SKBUILD_BUILD_DIR"] == str(tmp_path / "skbuild")
    counts = cc.figures(driver.stop(active))
    assert counts is not None
    assert counts["hits"] == 1
