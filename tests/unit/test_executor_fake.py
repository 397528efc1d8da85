"""The fake executor passes the executor conformance checks (tests/executor_conformance.py)
without Docker, and honours the rest of the Protocol: the file exchange, cancel, scripts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.config import Settings, load_settings
from service.errors import BuildCancelledError, BuildFailedError, ExecutorError
from service.models import BuildRequest
from tests.buildkit import Builder, leftover_workspaces, make_sdist, request_for
from tests.executor_conformance import ExecutorConformance
from tests.fakes import Fail, FakeExecutor, Hang, NoResult, Raise
from worker.engine import Hooks, run_build


@pytest.fixture
def builder(settings: Settings, fake: FakeExecutor) -> Iterator[Builder]:
    yield Builder(settings, fake)
    assert fake.open_sessions == 0, "a session was left open"
    assert leftover_workspaces(settings) == [], "a workspace was left behind"


@dataclass
class ScriptedProjects:
    """The conformance scenarios: the same sdists, the fake scripted as their builds behave."""

    folder: Path
    fake: FakeExecutor
    deadline_bound_s: float = 5

    def compiled(self) -> BuildRequest:
        return request_for(make_sdist("modern-ext", self.folder, "modern_ext", "2.0.0"))

    def failing_backend(self) -> BuildRequest:
        self.fake.script["build"] = Fail("the build backend failed: boom")
        return request_for(make_sdist("raising-backend", self.folder, "raising_backend", "0.1.0"))

    def slow(self) -> BuildRequest:
        self.fake.script["build"] = Hang()
        return request_for(make_sdist("slow-build", self.folder, "slow_build", "0.1.0"))


class TestFakeExecutor(ExecutorConformance):
    @pytest.fixture
    def scenario(self, tmp_path: Path, fake: FakeExecutor) -> ScriptedProjects:
        return ScriptedProjects(tmp_path, fake)

    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        """A one-second service deadline (below what settings validation allows a person to
        set), so the deadline check takes a second, not the ten a request may ask for."""
        return load_settings(home=tmp_path / "home").model_copy(update={"build_timeout_s": 1})


def _build(builder: Builder, tmp_path: Path) -> None:
    builder.build(request_for(make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0")))


def test_stages_talk_through_request_and_result_files(
    settings: Settings, fake: FakeExecutor, tmp_path: Path
) -> None:
    """The plan goes to io/<stage>.request.json; the answer comes from io/<stage>.result.json."""
    seen: list[str] = []

    def look(_stage: str) -> None:
        seen.extend(sorted(p.name for p in (settings.work_dir).glob("*/io/*.json")))

    fake.on_stage = look
    Builder(settings, fake).build(
        request_for(make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0"))
    )
    assert "runtime.request.json" in seen
    assert {"build.request.json", "runtime.result.json", "requires.result.json"} <= set(seen)


def test_a_driver_that_leaves_no_result_fails_the_stage(
    builder: Builder, fake: FakeExecutor, tmp_path: Path
) -> None:
    fake.script["requires_install"] = NoResult()
    with pytest.raises(BuildFailedError, match="the driver left no result") as info:
        _build(builder, tmp_path)
    assert info.value.stage == "requires_install"


def test_an_executor_error_keeps_its_type_and_gets_the_stage(
    builder: Builder, fake: FakeExecutor, tmp_path: Path
) -> None:
    fake.script["runtime"] = Raise(ExecutorError("the engine went away"))
    with pytest.raises(ExecutorError, match="the engine went away") as info:
        _build(builder, tmp_path)
    assert info.value.stage == "runtime"
    assert info.value.retryable


def test_cancel_during_a_stage_stops_it(
    settings: Settings, fake: FakeExecutor, tmp_path: Path
) -> None:
    cancelled: list[bool] = []
    fake.script["build_deps"] = Hang()
    fake.on_stage = lambda stage: cancelled.append(stage == "build_deps")
    sdist = make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0")
    hooks = Hooks(cancelled=lambda: any(cancelled))
    with pytest.raises(BuildCancelledError, match="cancelled during build_deps"):
        run_build(request_for(sdist), settings, fake, lambda built: built, hooks=hooks)
    assert [stage for stage, _ in fake.ran] == ["runtime", "build_deps"]
    assert fake.open_sessions == 0
    assert leftover_workspaces(settings) == []
