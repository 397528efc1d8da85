"""Build-only dependencies without a wheel for the target join the plan as nodes of their own,
built before the builds that need them; uv's answers (which requirement has no wheel, where its
sdist is) are given here as the tables uv would answer from."""

from __future__ import annotations

import pytest

from service.errors import InvalidRequestError
from service.models import Target
from service.project import parse_lock, plan_project, read_project_settings
from service.project.buildonly import with_build_only

CPU311 = Target(kind="cpu", python="3.11")
FILES = "http://127.0.0.1:9/files"

LOCK = """\
version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1"
source = { virtual = "." }
dependencies = [{ name = "fasttwo" }]

[[package]]
name = "fasttwo"
version = "1.0"
source = { registry = "http://127.0.0.1:9/links/" }
sdist = { url = "http://127.0.0.1:9/files/fasttwo-1.0.tar.gz" }
"""

PYPROJECT = """
[project]
name = "app"
version = "0.1"

[tool.uv.extra-build-dependencies]
fasttwo = ["fastone==1.0", "setuptools>=70"]
fastone = ["fastzero"]
"""

#: the packages that have no wheel (uv cannot install them without building), by name
SDIST_ONLY = {"fastone": "fastone==1.0", "fastzero": "fastzero==3.1"}


def probe(asked: list[tuple[str, ...]]):  # type: ignore[no-untyped-def]
    def blocker(runtime: tuple[str, ...]) -> str | None:
        asked.append(runtime)
        names = [r.split("=")[0].split(">")[0] for r in runtime]
        return next((SDIST_ONLY[n] for n in names if n in SDIST_ONLY), None)

    return blocker


def locate(pin: str) -> tuple[str, str | None]:
    name, _, version = pin.partition("==")
    return f"{FILES}/{name}-{version}.tar.gz", "ab" * 32


def test_a_build_only_package_without_a_wheel_is_a_node_built_first() -> None:
    settings = read_project_settings(PYPROJECT)
    plan = plan_project(parse_lock(LOCK), settings, CPU311)
    assert plan.order == ["fasttwo"]  # the lock alone does not know fastone
    asked: list[tuple[str, ...]] = []
    grown = with_build_only(
        plan, settings, locked={"fasttwo": "1.0"}, probe=probe(asked), locate=locate, limit=20
    )
    assert grown.generations == (("fastzero",), ("fastone",), ("fasttwo",))
    fastone, fasttwo = grown.nodes["fastone"], grown.nodes["fasttwo"]
    assert fasttwo.after == ("fastone",) and fasttwo.runtime == ("fastone==1.0", "setuptools>=70")
    assert fastone.reason == "the build of fasttwo needs it; no wheel for cpu-py3.11"
    assert fastone.runtime == ("fastzero==3.1",) and fastone.after == ("fastzero",)
    assert (fastone.sdist_url, fastone.sdist_sha256) == (f"{FILES}/fastone-1.0.tar.gz", "ab" * 32)
    assert grown.nodes["fastzero"].runtime == ()
    # each runtime asked once, never the nodes themselves (they are built here)
    assert asked == [("fastone==1.0", "setuptools>=70"), ("setuptools>=70",), ("fastzero",)]


def test_a_plan_whose_runtimes_install_from_wheels_is_unchanged() -> None:
    settings = read_project_settings(PYPROJECT.replace('"fastone==1.0", ', ""))
    plan = plan_project(parse_lock(LOCK), settings, CPU311)
    grown = with_build_only(plan, settings, locked={}, probe=probe([]), locate=locate, limit=20)
    assert grown is plan


def test_a_build_only_cycle_is_refused_before_anything_is_built() -> None:
    cyclic = PYPROJECT.replace('fastone = ["fastzero"]', 'fastone = ["fasttwo==1.0"]')
    settings = read_project_settings(cyclic)
    plan = plan_project(parse_lock(LOCK), settings, CPU311)
    with pytest.raises(InvalidRequestError, match="the build graph has a cycle"):
        with_build_only(plan, settings, locked={}, probe=probe([]), locate=locate, limit=20)
    with pytest.raises(InvalidRequestError, match="more than 1 build-only packages"):
        with_build_only(
            plan,
            read_project_settings(PYPROJECT),
            locked={},
            probe=probe([]),
            locate=locate,
            limit=1,
        )
