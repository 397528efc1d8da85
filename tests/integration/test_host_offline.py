"""The host executor as on a GPU node with no Docker and no network: the build inherits the
packages of the Python that runs the worker (its torch, its setuptools) and installs nothing
from an index (`--no-index`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from enginekit import Builder, leftover_workspaces, make_sdist, request_for

from service.config import load_settings
from service.errors import BuildFailedError
from worker.executors.host import HostExecutor


def _builder(home: Path) -> Builder:
    settings = load_settings(home=home, executor="host", host={"inherit_packages": True})
    return Builder(settings, HostExecutor(settings))


def test_offline_build_against_the_inherited_packages(tmp_path: Path) -> None:
    builder = _builder(tmp_path / "home")
    sdist = make_sdist("legacy-ext", tmp_path, "legacyext", "1.0.0")
    # setuptools comes from this Python's own packages; no index is asked for anything.
    request = request_for(sdist, index={"no_index": True})
    built = builder.build(request)

    assert built.manifest["image"]["image"] == "host:python3.11+site"
    assert any(line.startswith("setuptools==") for line in built.manifest["build_freeze"])
    # The runtime is what was asked for (nothing); the host's packages are listed apart.
    assert built.manifest["runtime_freeze"] == []
    assert any(line.startswith("setuptools==") for line in built.manifest["runtime_inherited"])
    assert any("setuptools>=40.8.0: setuptools" in line for line in builder.lines)
    assert any("inherits the packages of" in line for line in builder.lines)
    assert built.manifest["verify"]["imported"] == ["legacyext"]
    assert built.manifest["verify"]["gpu"]["kernel_run"] is False
    assert leftover_workspaces(builder.settings) == []


def test_offline_build_names_what_no_find_links_folder_has(tmp_path: Path) -> None:
    builder = _builder(tmp_path / "home")
    sdist = make_sdist("legacy-ext", tmp_path, "legacyext", "1.0.1")
    request = request_for(
        sdist, runtime=["wheelwright-no-such-project-x1==1.0"], index={"no_index": True}
    )
    with pytest.raises(BuildFailedError, match="wheelwright-no-such-project-x1") as info:
        builder.build(request)
    assert info.value.stage == "runtime"
    assert "--no-index" in info.value.cause
    assert leftover_workspaces(builder.settings) == []
