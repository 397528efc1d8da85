"""The stage contract (worker/driver/contract.py), both sides, without Docker.

The driver runs here as it runs in a build container: the flat bundle, its own process, its
request and result files; the worker's side reads those files into typed data or typed errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, get_type_hints

import pytest

import service.errors as errors_module
from service.errors import (
    BackendUnavailableError,
    BuildCancelledError,
    BuildFailedError,
    DeadlineExceededError,
    HookMissingError,
    VerifyFailedError,
    WheelwrightError,
)
from service.models import parse_request
from worker.driver import contract
from worker.executors.base import (
    ERRORS,
    StageContext,
    read_stage_result,
    stage_environment,
    supervise,
)
from worker.executors.bundle import DRIVER_FILES, driver_bundle
from worker.plan import GIB, Layout, Machine, make_plan, with_requires, with_wheel

LAYOUT = Layout(work="/ww/work", driver="/ww/driver", python="python3", uv="uv", ca="/ww/ca.pem")
REQUEST_TYPES = {
    "runtime": contract.RuntimeRequest,
    "build_deps": contract.BuildDepsRequest,
    "requires": contract.RequiresRequest,
    "requires_install": contract.RequiresInstallRequest,
    "build": contract.WheelRequest,
    "verify": contract.VerifyRequest,
}
GOOD_RESULTS: dict[str, dict[str, Any]] = {
    "runtime": {"python": "3.11.2", "freeze": ["torch==2.13.0"]},
    "build_deps": {"build_system": {"requires": ["setuptools"]}, "static": ["setuptools"]},
    "requires": {"dynamic": ["wheel"]},
    "requires_install": {"dynamic": ["wheel"], "freeze": ["wheel==0.45"]},
    "build": {"wheel": "x-1-py3-none-any.whl", "compiler_cache": None},
    "verify": {"imported": ["x"], "tags": ["py3-none-any"], "gpu": {"present": False}},
}


def _plan(**fields: Any) -> Any:
    request = parse_request({"source": {"kind": "requirement", "requirement": "x==1"}, **fields})
    return make_plan(request, LAYOUT, Machine(cpus=4, memory_bytes=16 * GIB))


def _ctx(**fields: Any) -> StageContext:
    return StageContext("b-test", time.monotonic() + 60, **fields)


def _write_result(io: Path, stage: str, result: object) -> None:
    io.mkdir(parents=True, exist_ok=True)
    (io / f"{stage}.result.json").write_text(json.dumps(result))


# ----------------------------------------------------------------------------- requests


def test_every_planned_request_has_exactly_its_stages_keys() -> None:
    plan = _plan(target={"kind": "cuda"}, verify_smoke="print(1)")
    assert [s.name for s in plan.stages] == list(contract.STAGES)
    for stage in plan.stages:
        shape = REQUEST_TYPES[stage.name]
        keys = set(get_type_hints(shape)) - set(contract.EXECUTOR_KEYS)
        assert set(stage.request) == keys, stage.name
        assert shape.__required_keys__ <= set(stage.request)
        json.dumps(stage.request)  # it travels as a JSON file


def test_late_inputs_are_typed_steps_of_the_plan() -> None:
    plan = _plan()
    assert plan.verify.request["wheel"] is None
    assert with_wheel(plan.verify, "/ww/work/out/x.whl").request["wheel"] == "/ww/work/out/x.whl"
    assert with_requires(plan.requires_install, ["torch"]).request["requires"] == ["torch"]
    assert plan.requires_install.request["requires"] == []  # plans are frozen values


def test_every_stage_policy_is_in_the_plan() -> None:
    plan = _plan()
    by_name = {s.name: s for s in plan.stages}
    assert [s.name for s in plan.stages if s.snapshot_read_only] == [
        "build_deps",
        "requires",
        "requires_install",
        "build",
    ]
    assert [s.name for s in plan.stages if s.retry_online] == ["requires"]
    assert not any(s.compiler_cache for s in plan.stages)  # no compiler cache was given
    for stage in plan.stages:
        env = stage.env
        assert ("UV_OFFLINE" in env) is (not stage.network), stage.name
        assert ("UV_NO_CACHE" in env) is (stage.cache == "none"), stage.name
        shared = env["UV_CACHE_DIR"] == f"{LAYOUT.shared_cache}/uv"
        assert shared is (stage.cache == "shared"), stage.name
        assert env["HOME"] == "/ww/work/home" and env["TMPDIR"] == "/ww/work/tmp"
        assert env["UV_LINK_MODE"] == "copy"
        assert env["SSL_CERT_FILE"] == env["PIP_CERT"] == "/ww/ca.pem"
    assert by_name["build"].env["MAX_JOBS"] == "4"
    assert "MAX_JOBS" not in by_name["runtime"].env  # no package code: no build environment
    online = by_name["requires"].with_network()
    assert online.network and "UV_OFFLINE" not in online.env
    assert online.env["UV_NO_CACHE"] == "1"  # online, still without the shared cache


def test_stage_environment_gives_proxies_only_to_stages_with_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    plan = _plan(build_env={"MAX_JOBS": "2"})
    passed = {"LANG": "C.UTF-8", "HTTPS_PROXY": "http://stale:1", "HOME": "/root"}
    build = stage_environment(plan.build, LAYOUT, path="/usr/bin", passed=passed)
    assert build["PATH"] == "/ww/work/env/bin:/usr/bin"
    assert "HTTPS_PROXY" not in build and build["UV_OFFLINE"] == "1"
    assert build["LANG"] == "C.UTF-8" and build["HOME"] == "/ww/work/home"  # the plan wins
    assert build["MAX_JOBS"] == "2"
    runtime = stage_environment(plan.runtime, LAYOUT, path="/usr/bin", passed=passed)
    assert runtime["HTTPS_PROXY"] == "http://proxy:3128"  # the worker's, never a passed one


# ----------------------------------------------------------------------------- results


@pytest.mark.parametrize("stage", contract.STAGES)
def test_good_results_fit_and_each_missing_key_is_named(stage: str) -> None:
    good = GOOD_RESULTS[stage]
    assert contract.check_result(stage, good) == []
    for key in good:
        partial = {k: v for k, v in good.items() if k != key}
        assert contract.check_result(stage, partial) == [f"data lacks {key!r}"]


def test_results_of_the_wrong_type_are_named() -> None:
    assert contract.check_result("runtime", {"python": "3.11", "freeze": "torch"}) == [
        "data['freeze'] is not list[str]: str"
    ]
    bad_wheel = {"wheel": 7, "compiler_cache": ["x"]}
    assert contract.check_result("build", bad_wheel) == [
        "data['wheel'] is not str: int",
        "data['compiler_cache'] is not dict[str, Any] | None: list",
    ]
    assert contract.check_result("runtime", {**GOOD_RESULTS["runtime"], "inherited": [1]}) == [
        "data['inherited'] is not list[str]: list"
    ]
    assert contract.check_result("verify", []) == ["data must be an object"]
    assert contract.check_result("publish", {}) == ["no stage 'publish'"]


def test_read_stage_result_returns_checked_data(tmp_path: Path) -> None:
    plan = _plan()
    _write_result(tmp_path, "build", {"ok": True, "data": GOOD_RESULTS["build"]})
    assert read_stage_result(tmp_path, plan.build, 0, _ctx()) == GOOD_RESULTS["build"]


@pytest.mark.parametrize(
    ("kind", "error", "exit_code"),
    [
        ("backend_unavailable", BackendUnavailableError, 16),
        ("hook_missing", HookMissingError, 17),
        ("undefined_symbols", VerifyFailedError, 18),
        ("cuda_archs", VerifyFailedError, 18),
        ("smoke", VerifyFailedError, 18),
        ("tags", VerifyFailedError, 18),
        ("backend", BuildFailedError, 10),
        ("command", BuildFailedError, 10),
        ("internal", BuildFailedError, 10),
    ],
)
def test_driver_error_kinds_become_typed_errors(
    tmp_path: Path, kind: str, error: type[BuildFailedError], exit_code: int
) -> None:
    stage = _plan().stage("verify" if error is VerifyFailedError else "build")
    _write_result(tmp_path, stage.name, {"ok": False, "error": {"kind": kind, "message": "why"}})
    ctx = _ctx()
    ctx.emit("last line of the log")
    with pytest.raises(BuildFailedError) as info:
        read_stage_result(tmp_path, stage, 1, ctx)
    assert type(info.value) is error
    assert (info.value.kind, info.value.stage, info.value.exit_code) == (
        kind,
        stage.name,
        exit_code,
    )
    assert info.value.http_status == 422 and not info.value.retryable
    assert str(info.value) == f"stage {stage.name!r} failed: why"
    assert info.value.log_tail == "last line of the log"


@pytest.mark.parametrize(
    ("result", "kind", "cause"),
    [
        (None, "no_result", "the driver left no result (exit code 1)"),
        ({"ok": False, "error": {"kind": "made_up", "message": "m"}}, "bad_result", "m"),
        ({"ok": False, "error": "not an object"}, "bad_result", "unknown"),
        ({"ok": True, "data": {"wheel": 1}}, "bad_result", "does not fit the build stage"),
        ({"ok": True}, "bad_result", "data must be an object"),
    ],
)
def test_results_that_break_the_contract_fail_the_stage(
    tmp_path: Path, result: object, kind: str, cause: str
) -> None:
    stage = _plan().build
    tmp_path.mkdir(exist_ok=True)
    if result is not None:
        _write_result(tmp_path, "build", result)
    with pytest.raises(BuildFailedError) as info:
        read_stage_result(tmp_path, stage, 1, _ctx())
    assert type(info.value) is BuildFailedError and info.value.kind == kind
    assert cause in info.value.cause


def test_every_mapped_kind_is_a_driver_kind_and_exit_codes_are_unique() -> None:
    assert set(ERRORS) <= set(contract.ERROR_KINDS)
    classes = [
        c
        for c in vars(errors_module).values()
        if isinstance(c, type) and issubclass(c, WheelwrightError)
    ]
    codes = {c: c.exit_code for c in classes if "exit_code" in vars(c)}
    assert len(set(codes.values())) == len(codes), codes
    assert DeadlineExceededError("build", "late").kind == "deadline"


# ----------------------------------------------------------------------------- the driver


def _run_driver(bundle: Path, io: Path, stage: str, request: dict[str, Any]) -> dict[str, Any]:
    io.mkdir(parents=True, exist_ok=True)
    (io / f"{stage}.request.json").write_text(json.dumps(request))
    argv = [
        sys.executable,
        str(bundle / "run.py"),
        stage,
        str(io / f"{stage}.request.json"),
        str(io / f"{stage}.result.json"),
    ]
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "PYTHONPATH": ""}
    subprocess.run(argv, cwd=io, env=env, capture_output=True, check=False, timeout=60)
    result: dict[str, Any] = json.loads((io / f"{stage}.result.json").read_text())
    return result


def _requires_request(source: Path) -> contract.RequiresRequest:
    return {
        "uv": "uv",
        "index_args": ["--no-index"],
        "venv": str(Path(sys.executable).parent.parent),
        "cuda": False,
        "inherit_packages": False,
        "source": str(source),
        "config": {},
    }


def test_the_bundle_ships_the_contract_and_the_driver_names_its_error_kinds(
    tmp_path: Path,
) -> None:
    assert "contract.py" in DRIVER_FILES
    bundle = driver_bundle(tmp_path / "driver")
    assert (bundle / "contract.py").is_file()

    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run_driver(bundle, tmp_path / "io1", "requires", dict(_requires_request(empty)))
    assert result["ok"] is False
    assert result["error"]["kind"] == "build_system"
    assert "neither pyproject.toml nor setup.py" in result["error"]["message"]

    missing = tmp_path / "missing-backend"
    missing.mkdir()
    (missing / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "no_such_backend_here"\n'
    )
    result = _run_driver(bundle, tmp_path / "io2", "requires", dict(_requires_request(missing)))
    assert result["error"]["kind"] == "backend_unavailable"
    assert "no_such_backend_here" in result["error"]["message"]
    stage = _plan().requires
    with pytest.raises(BackendUnavailableError, match="cannot be imported"):
        read_stage_result(tmp_path / "io2", stage, 1, _ctx())

    broken = dict(_requires_request(missing))
    del broken["source"]
    result = _run_driver(bundle, tmp_path / "io3", "requires", broken)
    assert result["error"] == {
        "kind": "internal",
        "message": "the driver crashed: KeyError: 'source'",
    }


# ----------------------------------------------------------------------------- the wait loop


def _process(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-u", "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def test_supervise_streams_lines_and_returns_the_exit_code() -> None:
    proc = _process("print('one'); print('two', end='')\nraise SystemExit(3)")
    assert proc.stdout is not None
    lines: list[str] = []
    code = supervise(
        _plan().build,
        _ctx(log=lines.append),
        output=iter(lambda: proc.stdout.read1(65536), b""),  # type: ignore[union-attr]
        wait=lambda s: _wait(proc, s),
        kill=proc.kill,
        what="process",
    )
    proc.stdout.close()
    assert code == 3 and lines == ["one", "two"]


def test_supervise_kills_a_cancelled_stage() -> None:
    proc = _process("import time\nprint('started')\ntime.sleep(60)")
    assert proc.stdout is not None
    cancel_at = time.monotonic() + 0.5
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(BuildCancelledError, match="cancelled during build"):
        supervise(
            _plan().build,
            _ctx(log=lines.append, cancelled=lambda: time.monotonic() > cancel_at),
            output=iter(lambda: proc.stdout.read1(65536), b""),  # type: ignore[union-attr]
            wait=lambda s: _wait(proc, s),
            kill=proc.kill,
            what="process",
        )
    assert proc.wait(timeout=5) != 0 and time.monotonic() - started < 10
    assert lines == ["started", "!! killing the build process"]
    proc.stdout.close()


def test_supervise_kills_a_stage_past_its_deadline() -> None:
    proc = _process("import time\ntime.sleep(60)")
    assert proc.stdout is not None
    ctx = StageContext("b-test", time.monotonic() + 0.3)
    with pytest.raises(DeadlineExceededError) as info:
        supervise(
            _plan().requires,
            ctx,
            output=iter(lambda: proc.stdout.read1(65536), b""),  # type: ignore[union-attr]
            wait=lambda s: _wait(proc, s),
            kill=proc.kill,
            what="process",
        )
    assert info.value.stage == "requires" and info.value.kind == "deadline"
    assert proc.wait(timeout=5) != 0
    proc.stdout.close()
