"""The executor conformance checks, shared by every tier: same builds, same errors, nothing left.

Each tier subclasses `ExecutorConformance` in a `Test...` class that provides two fixtures:
`builder` (a `Builder` over the executor under test, which asserts after each test that the
executor left nothing behind) and `scenario` (a `Scenario`: the requests these checks build). The
real executors (tests/integration) build the fixture projects in containers or venvs; the fake
one (tests/unit) is scripted to behave as those projects do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import pytest

from service.errors import BuildFailedError, DeadlineExceededError
from service.models import BuildRequest
from tests.buildkit import Builder

#: The stages an executor runs, in order (fetch before and publish after are the worker's).
EXECUTOR_STAGES = ["runtime", "build_deps", "requires", "requires_install", "build", "verify"]


class Scenario(Protocol):
    #: the longest a build past its deadline may take to stop, in seconds
    deadline_bound_s: float

    def compiled(self) -> BuildRequest:
        """modern-ext 2.0.0: a C extension with declared build dependencies."""
        ...

    def failing_backend(self) -> BuildRequest:
        """A backend whose build_wheel raises, saying "boom"."""
        ...

    def slow(self) -> BuildRequest:
        """A build that runs past its deadline."""
        ...


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


class ExecutorConformance:
    def test_builds_a_compiled_extension(self, builder: Builder, scenario: Scenario) -> None:
        built = builder.build(scenario.compiled())
        assert built.wheel.name.startswith("modern_ext-2.0.0-cp311-cp311-")
        assert built.manifest["image"]["executor"] == builder.executor.name
        assert built.manifest["verify"]["imported"] == ["modern_ext"]
        assert [s["name"] for s in built.manifest["stages"]][1:7] == EXECUTOR_STAGES
        assert {s["name"]: s["network"] for s in built.manifest["stages"]}["requires"] is False
        assert built.manifest["isolation"]["requires_network"] is False

    def test_a_failing_backend_names_its_stage(self, builder: Builder, scenario: Scenario) -> None:
        with pytest.raises(BuildFailedError) as info:
            builder.build(scenario.failing_backend())
        assert info.value.stage == "build"
        assert "boom" in info.value.log_tail

    def test_the_deadline_kills_the_stage(self, builder: Builder, scenario: Scenario) -> None:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            builder.build(scenario.slow())
        assert time.monotonic() - started < scenario.deadline_bound_s
        sleepers = [p for p in Path("/proc").glob("[0-9]*") if _cmdline(p).endswith("bdist_wheel")]
        assert sleepers == [], "a build process outlived its deadline"

    def test_reap_finds_nothing_after_clean_builds(self, builder: Builder) -> None:
        assert builder.executor.reap() == 0
