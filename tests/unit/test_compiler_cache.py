"""The compiler cache without Docker: the plan, sccache's figures, the store round trip
(generations, conditional writes, eviction by bytes and by members, a read-only fallback scope,
hostile archives) and the driver's wrappers. Scopes: test_cache_scope.py."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from service.config import load_settings
from service.environments import apply_environment
from service.errors import ConfigError
from service.jobs.memory import MemoryJobs
from service.metrics import record_compiler_cache, render
from service.models import EnvironmentSpec, parse_request
from service.store import LocalStore
from worker import compiler_cache as cc
from worker.cache_scope import Scope
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


LIMITS = cc.Limits(max_bytes=1 << 20, max_members=1_000)
DEMO, EVIL = Scope("index:demo@file:/f"), Scope("index:evil@file:/f")


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
    empty = cc.bring(store, DEMO, tmp_path / "a", LIMITS)
    assert (empty.generation, empty.read_scope) == (0, None)
    _fill(tmp_path / "a", {"1/2/entry": b"object code", "preprocessor/x": b"p"})
    first = cc.save(store, empty, tmp_path / "a", LIMITS, tmp_path)
    assert first["saved"] and first["generation"] == 1 and first["files"] == 2
    # a second worker that brought the same (empty) generation loses the conditional write
    _fill(tmp_path / "b", {"1/2/other": b"x"})
    lost = cc.save(store, empty, tmp_path / "b", LIMITS, tmp_path)
    assert not lost["saved"]
    assert "generation 1" in lost["reason"]
    brought = cc.bring(store, DEMO, tmp_path / "c", LIMITS)
    assert (brought.generation, brought.read_generation, brought.files) == (1, 1, 2)
    assert brought.read_scope == DEMO.name
    assert (tmp_path / "c" / "1/2/entry").read_bytes() == b"object code"
    assert not (tmp_path / "c" / "1/2/other").exists()
    # another project, or the same one from another origin, sees none of it
    for other in ("upload:demo@anonymous", "index:demo@https://elsewhere/simple"):
        assert cc.bring(store, Scope(other), tmp_path / "d", LIMITS).read_scope is None
    # later generations replace earlier ones; the two newest are kept
    for _ in range(3):
        brought = cc.bring(store, DEMO, tmp_path / f"g{brought.generation}", LIMITS)
        cc.save(store, brought, tmp_path / f"g{brought.generation}", LIMITS, tmp_path)
    kept = [g for g, _key in cc.generations(store, cc.scope_prefix(DEMO.name))]
    assert kept == [3, 4]


def test_a_branch_reads_the_shared_scope_while_its_own_is_empty_and_writes_only_its_own(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    shared = Scope("git:host/repo")
    _fill(tmp_path / "main", {"a/b/main-entry": b"main"})
    for _ in range(2):  # the default branch's builds: generations 1 and 2 of the shared scope
        done = cc.bring(store, shared, tmp_path / "tmp", LIMITS)
        cc.save(store, done, tmp_path / "main", LIMITS, tmp_path)
    stored = list(store.list(cc.scope_prefix(shared.name)))
    branch = Scope("git:host/repo@0123456789abcdef", fallback=shared.name)
    brought = cc.bring(store, branch, tmp_path / "b1", LIMITS)
    assert (brought.read_scope, brought.read_generation) == (shared.name, 2)
    assert brought.generation == 0  # its own scope has none: a save writes its generation 1
    assert (tmp_path / "b1" / "a/b/main-entry").read_bytes() == b"main"
    said: list[str] = []
    assert cc.bring_or_cold(store, branch, tmp_path / "b0", LIMITS, said.append).files == 1
    assert f"(read-only: {shared.name}): generation 2" in said[0]
    _fill(tmp_path / "b1", {"a/b/branch-entry": b"branch's own"})
    saved = cc.save(store, brought, tmp_path / "b1", LIMITS, tmp_path)
    assert saved["saved"] and saved["key"].startswith(cc.scope_prefix(branch.name))
    assert list(store.list(cc.scope_prefix(shared.name))) == stored  # never written
    again = cc.bring(store, branch, tmp_path / "b2", LIMITS)
    assert (again.read_scope, again.generation) == (branch.name, 1)
    main = cc.bring(store, shared, tmp_path / "m", LIMITS)
    assert not (tmp_path / "m" / "a/b/branch-entry").exists()
    assert main.read_generation == 2


def test_trim_evicts_the_least_recently_used_first(tmp_path: Path) -> None:
    _fill(tmp_path, {"old": b"a" * 100}, mtime=1000)
    _fill(tmp_path, {"mid": b"b" * 100}, mtime=2000)
    _fill(tmp_path, {"new": b"c" * 100}, mtime=3000)
    (tmp_path / "link").symlink_to("/etc/passwd")
    (tmp_path / "dirlink").symlink_to("/etc")
    (tmp_path / "empty/deeper").mkdir(parents=True)
    assert cc.trim(tmp_path, cc.Limits(250, 1_000)) == (1, 100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid", "new"]


def _empty_files(folder: Path, count: int) -> None:
    """`count` empty files in 10 folders, older first: 0 bytes, `count` + 10 members."""
    for i in range(count):
        path = folder / f"{i % 10}" / f"{i:06d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (1_000_000 + i, 1_000_000 + i))


def test_members_are_bounded_like_bytes_empty_files_count_too(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    _empty_files(folder, 1_500)  # 0 bytes: only the member bound can hold them
    limits = cc.Limits(max_bytes=1 << 30, max_members=1_000)
    removed, removed_bytes = cc.trim(folder, limits)
    files = [p for p in folder.rglob("*") if p.is_file()]
    members = len(list(folder.rglob("*")))
    assert removed_bytes == 0 and removed == 1_500 - len(files)
    assert len(files) >= 900 and members <= 1_000  # each folder a file needs counts as well
    # the newest were kept: least recently used first, as for bytes
    assert min(int(p.name) for p in files) == 1_500 - len(files)
    store = LocalStore(tmp_path / "store")
    brought = cc.bring(store, DEMO, tmp_path / "in", limits)
    _empty_files(tmp_path / "in", 1_500)
    saved = cc.save(store, brought, tmp_path / "in", limits, tmp_path)
    assert saved["saved"] and saved["files"] == len(files)
    assert saved["evicted_files"] == 1_500 - len(files)
    # what was saved under the bound is brought back under it
    assert cc.bring(store, DEMO, tmp_path / "back", limits).files == len(files)


def test_a_stored_generation_of_20k_empty_files_is_not_brought(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        for i in range(20_000):
            tar.addfile(tarfile.TarInfo(f"{i % 100:02d}/{i:06d}"), io.BytesIO(b""))
    key = f"{cc.scope_prefix(EVIL.name)}0000000004.tar"
    store.put(key, payload.getvalue())
    limits = cc.Limits(max_bytes=1 << 30, max_members=1_000)
    said: list[str] = []
    cold = cc.bring_or_cold(store, EVIL, tmp_path / "in2", limits, said.append)
    assert (cold.read_scope, cold.files) == (None, 0)
    assert cold.generation == 4  # the next save supersedes the refused generation
    assert f"generation 4 ({key}) refused: more than 1000 members" in said[0]
    assert "(compiler_cache.max_members); starting cold" in said[0], said
    assert list((tmp_path / "in2").iterdir()) == []


def test_the_member_bound_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(home=tmp_path).compiler_cache.max_members == 100_000
    monkeypatch.setenv("WHEELWRIGHT_COMPILER_CACHE__MAX_MEMBERS", "5000")
    assert load_settings(home=tmp_path).compiler_cache.max_members == 5_000
    monkeypatch.setenv("WHEELWRIGHT_COMPILER_CACHE__MAX_MEMBERS", "10")
    with pytest.raises(ConfigError, match="max_members"):
        load_settings(home=tmp_path)


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
    store.put(f"{cc.scope_prefix(EVIL.name)}0000000001.tar", payload.getvalue())
    brought = cc.bring(store, EVIL, tmp_path / "in", LIMITS)
    assert brought.files == 1
    assert sorted(p.name for p in (tmp_path / "in").rglob("*")) == ["1", "entry"]
    escaping = io.BytesIO()
    with tarfile.open(fileobj=escaping, mode="w") as tar:
        bad = tarfile.TarInfo("../outside")
        bad.size = 1
        tar.addfile(bad, io.BytesIO(b"x"))
    store.put(f"{cc.scope_prefix(EVIL.name)}0000000002.tar", escaping.getvalue())
    said: list[str] = []
    cold = cc.bring_or_cold(store, EVIL, tmp_path / "in2", LIMITS, said.append)
    assert (cold.generation, cold.read_scope) == (2, None)  # its next save is generation 3
    assert "starting cold" in said[0]
    assert not (tmp_path / "outside").exists()


def test_why_off_and_save_reasons() -> None:
    request = parse_request({"source": {"kind": "directory", "path": "/src"}})
    assert cc.why_off(request, True, True, True) == ""
    assert "settings" in cc.why_off(request, False, True, True)
    off = request.model_copy(update={"compiler_cache": False})
    assert "request" in cc.why_off(off, True, True, True)
    assert "executor" in cc.why_off(request, True, False, True)
    warm = cc.Brought("index:a@x", cc.scope_prefix("index:a@x"), 3, "index:a@x", 3)
    counts = cc.figures(STATS)
    assert counts is not None
    assert cc.save_reason(warm, {**counts, "cache_writes": 0}).startswith("nothing new")
    assert cc.save_reason(warm, counts) == ""
    assert cc.save_reason(warm, None) != ""
    # nothing was brought (a cold build, or a refused generation): saved even without writes
    cold = cc.Brought("index:a@x", cc.scope_prefix("index:a@x"), 3)
    assert cc.save_reason(cold, {**counts, "cache_writes": 0}) == ""


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
