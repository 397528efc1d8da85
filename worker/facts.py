"""What a build found out, stage by stage, and the manifest's sections it makes.

The engine collects the typed results of the driver's stages (`StageResults`, one TypedDict of
`worker/driver/contract.py` per stage) and hands them, with these sections, to publish; publish
alone writes the manifest, adding the sections of the wheel it actually stores.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from worker.driver.contract import (
    BuildDepsResult,
    RequiresInstallResult,
    RequiresResult,
    RuntimeResult,
    VerifyResult,
    WheelResult,
)
from worker.fetch import Fetched

MANIFEST_SCHEMA = "wheelwright.manifest/1"


@dataclass(frozen=True)
class StageResults:
    """Each executor stage's result, as the driver wrote it and the contract checked it."""

    runtime: RuntimeResult
    build_deps: BuildDepsResult
    requires: RequiresResult
    requires_install: RequiresInstallResult
    build: WheelResult
    verify: VerifyResult


def build_facts(
    fetched: Fetched,
    *,
    ids: Mapping[str, str],
    image: Mapping[str, Any],
    build_env: Mapping[str, str],
    results: StageResults,
) -> dict[str, Any]:
    """The manifest's sections of the build itself (publish adds the wheel's and the log's)."""
    return {
        "schema": MANIFEST_SCHEMA,
        **ids,
        "inputs": fetched.request.model_dump(mode="json"),
        "source": fetched.source_facts(),
        "image": dict(image),
        "build_env": dict(build_env),
        # the package recipe applied where the request was prepared (also in `inputs`)
        "recipe": recipe.model_dump(mode="json") if (recipe := fetched.request.recipe) else None,
        "python": results.runtime["python"],
        "runtime_freeze": results.runtime["freeze"],
        "runtime_inherited": results.runtime.get("inherited", []),
        "build_system": results.build_deps["build_system"],
        "build_requires": {
            "static": results.build_deps["static"],
            "dynamic": results.requires["dynamic"],
        },
        "build_freeze": results.requires_install["freeze"],
        "toolchain": dict(results.build.get("toolchain") or {}),
        "isolation": {
            "shared_cache": "written only by the runtime stage (wheels only, no package code)",
            "requires_network": results.requires.get("network", False),
        },
        "verify": results.verify,
        "host": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "worker_python": platform.python_version(),
            "wheelwright": version("wheelwright"),
        },
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "expected": {
            "project": fetched.expected.project,
            "version": fetched.expected.version,
            "from": fetched.expected.origin,
        },
    }
