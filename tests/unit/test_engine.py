"""The engine's order and bookkeeping (worker/engine.py `run_build`), over the fake executor:
stages in order, each timed and logged as its own section, a failing stage stops the build and
names itself, `requires` is asked again online, the workspace goes and the log stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Settings
from service.errors import BuildFailedError, DeadlineExceededError, InvalidArtifactError
from service.models import BuildRequest
from tests.buildkit import leftover_workspaces, make_sdist, request_for
from tests.executor_conformance import EXECUTOR_STAGES
from tests.fakes import Fail, FakeExecutor, Hang
from worker.engine import Built, Hooks, StageEvent, run_build

ALL_STAGES = ["fetch", *EXECUTOR_STAGES]


@pytest.fixture
def request_(tmp_path: Path) -> BuildRequest:
    return request_for(make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0"))


class Run:
    """One `run_build`, with what its hooks and `on_wheel` saw."""

    def __init__(self, settings: Settings, fake: FakeExecutor) -> None:
        self.settings, self.fake = settings, fake
        self.events: list[StageEvent] = []
        self.lines: list[str] = []
        self.handed: list[Built] = []
        self.wheel_existed = False

    def on_wheel(self, built: Built) -> Built:
        self.handed.append(built)
        self.wheel_existed = built.wheel.is_file()
        return built

    def __call__(self, request: BuildRequest, build_id: str = "b0000000000000001") -> Built:
        hooks = Hooks(on_stage=self.events.append, on_line=self.lines.append)
        return run_build(
            request, self.settings, self.fake, self.on_wheel, build_id=build_id, hooks=hooks
        )

    def started(self) -> list[str]:
        return [e.stage for e in self.events if e.seconds is None]

    def kept_log(self, build_id: str = "b0000000000000001") -> str:
        (log,) = self.settings.home.rglob(f"{build_id}.log")
        return log.read_text()


@pytest.fixture
def run(settings: Settings, fake: FakeExecutor) -> Run:
    return Run(settings, fake)


def test_stages_run_in_order_timed_and_logged(run: Run, request_: BuildRequest) -> None:
    built = run(request_)
    assert run.started() == [*ALL_STAGES, "publish"]
    assert [stage for stage, _ in run.fake.ran] == EXECUTOR_STAGES
    stages = built.manifest["stages"]
    assert [s["name"] for s in stages] == ALL_STAGES
    assert all(s["ok"] and s["seconds"] >= 0 for s in stages)
    assert {s["name"]: s["network"] for s in stages} == {
        "fetch": True,
        "runtime": True,
        "build_deps": True,
        "requires": False,
        "requires_install": True,
        "build": False,
        "verify": False,
    }
    ended = [e for e in run.events if e.seconds is not None]
    assert [e.stage for e in ended] == [*ALL_STAGES, "publish"] and all(e.ok for e in ended)
    log = run.kept_log()
    for stage in [*ALL_STAGES, "publish"]:
        assert f"===> [{stage}] start" in log
        assert f"<=== [{stage}] ok in" in log
    assert "fake build: running (network off)" in log
    assert log.index("[runtime] start") < log.index("fake runtime: running")
    assert log.index("fake runtime: running") < log.index("<=== [runtime] ok")
    assert run.lines == log.splitlines()  # the same lines went to the hooks


def test_the_wheel_is_handed_over_while_it_exists_then_the_workspace_goes(
    run: Run, request_: BuildRequest
) -> None:
    built = run(request_)
    assert run.wheel_existed
    assert built.wheel.name.startswith("modern_ext-2.0.0-cp311-cp311-")
    assert "wheel" not in built.manifest, "the wheel section is publish's, written once"
    assert built.manifest["build_id"] == built.build_id == "b0000000000000001"
    assert built.manifest["request_key"] == built.request_key
    assert built.manifest["environment"] == built.environment
    assert not built.wheel.exists()
    assert leftover_workspaces(run.settings) == []
    assert run.fake.open_sessions == 0
    assert built.log_path.is_file(), "the log is kept for the caller to store"


@pytest.mark.parametrize("failing", EXECUTOR_STAGES)
def test_a_failing_stage_stops_the_build_and_names_itself(
    run: Run, request_: BuildRequest, failing: str
) -> None:
    run.fake.script[failing] = Fail(f"{failing} is broken")
    with pytest.raises(BuildFailedError, match=f"{failing} is broken") as info:
        run(request_)
    assert info.value.stage == failing
    assert f"{failing} is broken" in info.value.log_tail
    assert [stage for stage, _ in run.fake.ran][-1] == failing  # nothing ran after it
    assert run.handed == []  # nothing to publish
    assert run.started()[-1] == failing
    assert [e.ok for e in run.events if e.seconds is not None][-1] is False
    log = run.kept_log()
    assert f"!! [{failing}] BuildFailedError: stage {failing!r} failed" in log
    assert f"<=== [{failing}] FAILED in" in log
    assert leftover_workspaces(run.settings) == []
    assert run.fake.open_sessions == 0


def test_requires_is_asked_again_online_and_the_manifest_says_so(
    run: Run, request_: BuildRequest
) -> None:
    run.fake.script["requires"] = Fail("cannot reach pypi.org", offline_only=True)
    built = run(request_)
    assert ("requires", False) in run.fake.ran and ("requires", True) in run.fake.ran
    assert built.manifest["isolation"]["requires_network"] is True
    assert "failed offline; asking the backend again with the network on" in run.kept_log()
    assert [s["name"] for s in built.manifest["stages"]].count("requires") == 2


def test_no_other_stage_is_retried_online(run: Run, request_: BuildRequest) -> None:
    run.fake.script["build"] = Fail("needs the network", offline_only=True)
    with pytest.raises(BuildFailedError) as info:
        run(request_)
    assert info.value.stage == "build"
    assert run.fake.ran.count(("build", False)) == 1 and ("build", True) not in run.fake.ran


def test_requires_past_its_deadline_is_not_asked_again(
    settings: Settings, fake: FakeExecutor, request_: BuildRequest
) -> None:
    quick = settings.model_copy(update={"build_timeout_s": 1})  # below what validation allows
    fake.script["requires"] = Hang()
    with pytest.raises(DeadlineExceededError) as info:
        Run(quick, fake)(request_)
    assert info.value.stage == "requires"
    assert [stage for stage, _ in fake.ran].count("requires") == 1
    assert leftover_workspaces(quick) == []


@pytest.mark.parametrize("named", ["../../etc/passwd.whl", ".hidden.whl", "setup.py"])
def test_a_build_that_names_no_plain_wheel_is_refused(
    run: Run, request_: BuildRequest, named: str
) -> None:
    run.fake.wheel_file = named
    with pytest.raises(InvalidArtifactError, match="named no plain wheel file"):
        run(request_)
    assert run.handed == []
    assert "verify" not in [stage for stage, _ in run.fake.ran]
    assert leftover_workspaces(run.settings) == []


def test_keep_workspace_keeps_it(
    settings: Settings, fake: FakeExecutor, request_: BuildRequest
) -> None:
    keep = settings.model_copy(update={"keep_workspace": True})
    Run(keep, fake)(request_, build_id="b0000000000000002")
    assert leftover_workspaces(keep) == ["b0000000000000002"]
