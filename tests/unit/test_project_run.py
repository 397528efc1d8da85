"""Project builds, decided without Docker: waves in order through the real `submit` (memory job
state, local store, an in-process dispatcher with two workers), failures reported on dependents,
the node requests in the project's environment, the uv configuration written back."""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from service.config import Settings, load_settings
from service.dispatch import InProcessDispatcher
from service.environments import apply_environment
from service.errors import InvalidRequestError
from service.jobs import MemoryJobs
from service.models import BuildRequest, StageTiming, Target
from service.project.build import node_request
from service.project.environment import (
    ProjectEnvironment,
    check_python,
    declared_pins,
    project_environment,
)
from service.project.plan import BuildNode, ProjectPlan
from service.project.run import ProjectRun
from service.project.uvconfig import uv_config_text, write_uv_config
from service.store import open_store
from service.submit import Submitted, submit

CPU = Target(kind="cpu", python="3.11")
FILES = "https://files.example/packages"
PYPROJECT = """\
[project]
name = "demo"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["torch==2.13.0", "beta", "pure"]

[[tool.uv.index]]
name = "fixtures"
url = "http://127.0.0.1:9/simple/"
default = true
"""


def node(name: str, *after: str, runtime: tuple[str, ...] = ("torch==2.13.0",)) -> BuildNode:
    pins = (*runtime, *(f"{a}==1.0" for a in after))
    url = f"{FILES}/{name}-1.0.tar.gz"
    return BuildNode(name, "1.0", "sdist only", pins, tuple(after), sdist_url=url)


def plan_of(*nodes: BuildNode, waves: tuple[tuple[str, ...], ...]) -> ProjectPlan:
    return ProjectPlan(CPU, {n.name: n for n in nodes}, waves, ())


@pytest.fixture
def env(tmp_path: Path) -> tuple[Settings, ProjectEnvironment]:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    settings = load_settings(home=tmp_path / "home")
    env = project_environment(
        settings,
        tmp_path / "pyproject.toml",
        target=CPU,
        environment=None,
        base_url="http://127.0.0.1:8123",
        abi_pins={"torch": "2.13.0"},
    )
    return env.settings(settings), env


class Service:
    """The real submit path; `outcome` decides each build's end (the worker's part)."""

    def __init__(
        self,
        settings: Settings,
        outcome: Callable[[str], str | None],
        seconds: dict[str, float] | None = None,
    ) -> None:
        self.settings, self.jobs = settings, MemoryJobs()
        self.seconds = seconds or {}
        self.ended: list[str] = []
        self.store = open_store(settings)
        self.running: set[str] = set()
        self.overlap = 0
        self.order: list[str] = []
        self._lock = threading.Lock()
        self._outcome = outcome
        self.dispatcher = InProcessDispatcher(self._run, workers=2)

    def _run(self, build_id: str) -> None:
        record = self.jobs.start(build_id)
        name = record.project
        with self._lock:
            self.running.add(name)
            self.overlap = max(self.overlap, len(self.running))
            self.order.append(name)
        self.jobs.record_stage(build_id, StageTiming(name="build", network=False))
        # the build's own work, as long as it takes; it stops when cancelled, as a worker does
        if self._work(build_id, self.seconds.get(name, 0.3)):
            with self._lock:
                self.running.discard(name)
                self.ended.append(name)
            self.jobs.finish(build_id, "cancelled", error="cancelled")
            return
        error = self._outcome(name)
        with self._lock:
            self.running.discard(name)
            self.ended.append(name)
        if error is None:
            self.jobs.finish(build_id, "succeeded", artifact={"filename": f"{name}-1.0.whl"})
        else:
            self.jobs.finish(build_id, "failed", error=error, error_stage="build")

    def _work(self, build_id: str, seconds: float) -> bool:
        """Work for `seconds`; True when the build was cancelled meanwhile (it stops then)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.jobs.cancelled(build_id):
                return True
            time.sleep(0.01)
        return False

    def submit(self, request: BuildRequest) -> Submitted:
        return submit(request, self.settings, self.store, self.jobs, self.dispatcher)


def test_waves_run_in_order_and_a_waves_builds_at_once(env) -> None:  # type: ignore[no-untyped-def]
    settings, project_env = env
    service = Service(settings, lambda name: None)
    plan = plan_of(
        node("alpha"), node("pure"), node("beta", "alpha"), waves=(("alpha", "pure"), ("beta",))
    )
    progress = ProjectRun(
        plan, lambda n: service.submit(node_request(n, project_env)), service.jobs, poll_s=0.02
    ).run()
    assert [n.state for n in progress.nodes.values()] == ["built", "built", "built"]
    assert service.order[-1] == "beta" and set(service.order[:2]) == {"alpha", "pure"}
    assert service.overlap == 2  # alpha and pure built side by side
    assert progress.nodes["beta"].wheel == "beta-1.0.whl"
    record = service.jobs.get(str(progress.nodes["beta"].build_id))
    assert record.environment == project_env.name
    assert record.request.runtime == ("torch==2.13.0", "alpha==1.0")
    assert record.request.index.extra_index_urls[0] == project_env.index_url


def test_a_chain_beside_a_slow_build_runs_as_each_link_is_ready(env) -> None:  # type: ignore[no-untyped-def]
    # two workers: slow takes one for 1.5 s, the chain one -> two -> three the other, each link
    # queued the moment the one before it is built, not when slow's "wave" ends
    settings, project_env = env
    service = Service(settings, lambda name: None, seconds={"slow": 1.5, "one": 0.1, "two": 0.1})
    service.seconds["three"] = 0.1
    plan = plan_of(
        node("slow"),
        node("one"),
        node("two", "one"),
        node("three", "two"),
        waves=(("one", "slow"), ("two",), ("three",)),
    )
    progress = ProjectRun(
        plan, lambda n: service.submit(node_request(n, project_env)), service.jobs, poll_s=0.02
    ).run()
    assert {n.state for n in progress.nodes.values()} == {"built"}
    assert service.ended == ["one", "two", "three", "slow"]  # the chain's last before slow
    three, slow = progress.nodes["three"], progress.nodes["slow"]
    assert three.finished is not None and slow.finished is not None
    assert three.finished < slow.finished


def test_cancel_stops_queued_nodes_and_running_builds(env) -> None:  # type: ignore[no-untyped-def]
    settings, project_env = env
    service = Service(settings, lambda name: None, seconds={"slow": 30.0, "one": 30.0})
    plan = plan_of(node("slow"), node("one"), node("two", "one"), waves=(("one", "slow"), ("two",)))
    stop = threading.Event()
    run = ProjectRun(
        plan,
        lambda n: service.submit(node_request(n, project_env)),
        service.jobs,
        poll_s=0.02,
        cancelled=stop.is_set,
        on_change=lambda: service.running == {"one", "slow"} and stop.set(),
    )
    started = time.monotonic()
    progress = run.run()
    assert time.monotonic() - started < 10  # not the 30 s the builds would take
    states = {n.name: n.state for n in progress.nodes.values()}
    assert states == {"one": "cancelled", "slow": "cancelled", "two": "cancelled"}
    assert progress.nodes["two"].error == "cancelled before it started"
    assert progress.nodes["one"].error == "cancelled while it ran"
    assert sorted(service.ended) == ["one", "slow"] and service.running == set()
    for name in ("one", "slow"):  # the builds themselves ended cancelled, none left running
        assert service.jobs.get(str(progress.nodes[name].build_id)).state == "cancelled"
    assert "two" not in service.order  # never queued


def test_a_failed_package_fails_its_dependents_naming_it(env) -> None:  # type: ignore[no-untyped-def]
    settings, project_env = env
    service = Service(settings, lambda name: "setup.py exploded" if name == "alpha" else None)
    plan = plan_of(
        node("alpha"),
        node("pure"),
        node("beta", "alpha"),
        node("gamma", "beta"),
        waves=(("alpha", "pure"), ("beta",), ("gamma",)),
    )
    progress = ProjectRun(
        plan, lambda n: service.submit(node_request(n, project_env)), service.jobs, poll_s=0.02
    ).run()
    states = {n.name: n.state for n in progress.nodes.values()}
    assert states == {"alpha": "failed", "pure": "built", "beta": "not built", "gamma": "not built"}
    assert progress.nodes["alpha"].error == "failed in stage build: setup.py exploded"
    assert "needs alpha, which was not built" in str(progress.nodes["beta"].error)
    assert "needs beta" in str(progress.nodes["gamma"].error)
    assert sorted(service.order) == ["alpha", "pure"]  # nothing of beta or gamma was queued
    assert [n.name for n in progress.failed] == ["alpha", "beta", "gamma"]


def test_a_refused_submission_fails_that_package_only(env) -> None:  # type: ignore[no-untyped-def]
    settings, project_env = env
    service = Service(settings, lambda name: None)
    bad = node("alpha", runtime=("torch==2.4.0",))  # the environment pins torch 2.13.0
    plan = plan_of(bad, node("pure"), waves=(("alpha", "pure"),))
    progress = ProjectRun(
        plan, lambda n: service.submit(node_request(n, project_env)), service.jobs, poll_s=0.02
    ).run()
    assert progress.nodes["pure"].state == "built"
    assert progress.nodes["alpha"].state == "failed"
    assert "needs torch==2.4.0, but environment" in str(progress.nodes["alpha"].error)


def test_the_project_environment_is_one_page_for_every_package(env) -> None:  # type: ignore[no-untyped-def]
    settings, project_env = env
    assert project_env.name.startswith("cpu-py311-torch2.13.0-")
    assert project_env.index_url == f"http://127.0.0.1:8123/simple/{project_env.name}/"
    assert project_env.spec.index.index_url == "http://127.0.0.1:9/simple/"
    alpha = apply_environment(node_request(node("alpha"), project_env), settings)
    beta = apply_environment(node_request(node("beta", "alpha"), project_env), settings)
    assert alpha.runtime == ("torch==2.13.0",)
    assert beta.runtime == ("torch==2.13.0", "alpha==1.0")
    assert alpha.index == beta.index


def test_a_node_is_the_sdist_its_lock_names_and_nothing_else(env) -> None:  # type: ignore[no-untyped-def]
    _, project_env = env
    sha = "0f" * 32
    locked = BuildNode(
        "alpha",
        "1.0",
        "sdist only",
        (),
        (),
        sdist_url=f"{FILES}/alpha-1.0.tar.gz",
        sdist_sha256=sha,
    )
    source = node_request(locked, project_env).source
    assert source.model_dump() == {
        "kind": "requirement",
        "requirement": "alpha==1.0",
        "url": f"{FILES}/alpha-1.0.tar.gz",
        "sha256": sha,
    }
    nowhere = BuildNode("alpha", "1.0", "sdist only", (), ())
    with pytest.raises(InvalidRequestError, match=r"the lock names no sdist URL for alpha==1\.0"):
        node_request(nowhere, project_env)
    bad = BuildNode("alpha", "1.0", "sdist only", (), (), sdist_url="ftp://x/a.tar.gz")
    with pytest.raises(InvalidRequestError, match=r"the lock's sdist for alpha==1\.0: .*http"):
        node_request(bad, project_env)


def test_a_python_the_target_lacks_is_refused(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    with pytest.raises(InvalidRequestError, match=r"requires Python >=3.12, but the target cpu"):
        check_python({"project": {"requires-python": ">=3.12"}}, CPU, pyproject)
    check_python({"project": {"requires-python": ">=3.11,<3.13"}}, CPU, pyproject)
    assert declared_pins(tomllib.loads(PYPROJECT), ["torch"]) == {"torch": "2.13.0"}


def test_the_uv_configuration_is_merged_keeping_comments(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        "# my project\n[project]\nname = 'demo'  # keep me\ndependencies = ['beta', 'alpha']\n\n"
        "[[tool.uv.index]]\nname = 'mirror'\nurl = 'http://mirror/simple/'\n\n"
        "[tool.uv.sources]\nlocal-thing = { path = '../x' }\n"
    )
    url = "http://host:8000/simple/cpu-py311-torch2.13.0-abcd1234/"
    write_uv_config(pyproject, url, ["Beta", "alpha"])
    text = write_uv_config(pyproject, url, ["beta", "alpha"])  # twice: one index, not two
    assert text.startswith("# my project\n[project]\nname = 'demo'  # keep me\n")
    assert "local-thing = { path = '../x' }" in text
    assert 'alpha = {index = "wheelwright"}\nbeta = {index = "wheelwright"}\n' in text
    indexes = tomllib.loads(text)["tool"]["uv"]["index"]
    assert indexes == [  # ours first, explicit: both are the project's own dependencies
        {"name": "wheelwright", "url": url, "explicit": True},
        {"name": "mirror", "url": "http://mirror/simple/"},
    ]
    printed = uv_config_text(url, ["beta", "alpha"], direct={"alpha", "beta"})
    assert f'url = "{url}"' in printed and "explicit = true" in printed
    assert printed.index("alpha =") < printed.index("beta =")


def test_a_package_built_for_a_dependency_keeps_the_index_searchable(tmp_path: Path) -> None:
    # uv routes [tool.uv.sources] for direct dependencies only: alpha, a dependency of beta,
    # is found because our index comes first and is not explicit
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[project]\nname = 'demo'\ndependencies = ['beta==1.0']\n")
    url = "http://host:8000/simple/env/"
    data = tomllib.loads(write_uv_config(pyproject, url, ["beta", "alpha"]))
    assert data["tool"]["uv"]["index"] == [{"name": "wheelwright", "url": url, "explicit": False}]
    assert data["tool"]["uv"]["sources"] == {
        "alpha": {"index": "wheelwright"},
        "beta": {"index": "wheelwright"},
    }
    printed = uv_config_text(url, ["beta", "alpha"], direct={"beta"})
    assert "explicit = false" in printed and "not alpha" in printed


def test_the_environment_is_the_same_after_the_project_points_at_it(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT)

    def name() -> str:
        return project_environment(
            settings,
            pyproject,
            target=CPU,
            environment=None,
            base_url="http://127.0.0.1:8123",
            abi_pins={"torch": "2.13.0"},
        ).name

    before = name()
    write_uv_config(pyproject, f"http://127.0.0.1:8123/simple/{before}/", ["beta"])
    assert name() == before
    pyproject.write_text(PYPROJECT.replace("127.0.0.1:9", "127.0.0.1:10"))
    assert name() != before  # another index is another environment
