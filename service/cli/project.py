"""`wheelwright project plan`: which of a project's packages a target needs built, in order."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from service.cli.common import app, err, fail, settings_for
from service.egress import EgressPolicy
from service.errors import InvalidRequestError, WheelwrightError
from service.models import EnvironmentSpec, Target
from service.project import (
    ProjectBuildSettings,
    ProjectPlan,
    parse_lock,
    plan_project,
    project_build_settings,
)
from service.project.files import read_pyproject
from service.project.inputs import find_input, input_lock
from service.project.resolve import project_lock

project_app = typer.Typer(
    help="Whole projects: pyproject.toml and uv.lock, pylock.toml, requirements.txt.",
    no_args_is_help=True,
)
app.add_typer(project_app, name="project")


#: The options `project plan` and `project build` share: the project, and its target.
ProjectPath = Annotated[
    Path,
    typer.Argument(
        help="the project: a folder (pyproject.toml and uv.lock, else pylock.toml, else "
        "requirements.txt) or one such file"
    ),
]
TargetKind = Annotated[Literal["cpu", "cuda"], typer.Option(help="cpu or cuda image")]
CudaVersion = Annotated[str | None, typer.Option(help="CUDA version of a cuda target")]
PythonVersion = Annotated[str, typer.Option(help="Python version, like 3.11")]
EnvironmentName = Annotated[
    str | None, typer.Option(help="a named environment of the config file (its target)")
]


@project_app.command("plan")
def plan(
    path: ProjectPath,
    target: TargetKind = "cpu",
    cuda: CudaVersion = None,
    python: PythonVersion = "3.11",
    environment: EnvironmentName = None,
    index: Annotated[
        str | None,
        typer.Option(help="the environment's index on a Wheelwright service, put in front"),
    ] = None,
    output_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
) -> None:
    """Show what the project is missing for a target: each package to build, why, with what
    runtime, after which others. Nothing is built; uv locks with building forbidden."""
    try:
        settings = settings_for(None)
        chosen = chosen_target(settings.environments, environment, target, cuda, python)
        given = find_input(path)
        egress = EgressPolicy.from_settings(settings, own=index)
        if given.has_pyproject:
            folder = given.folder
            data = read_pyproject(given.file, settings)
            locked = project_lock(folder, settings, egress=egress, pyproject=data, index=index)
            if locked.text is None:
                _blocked(locked.blocked_by or "?", chosen, output_json)
                return
            lock = parse_lock(locked.text, where=str(folder / "uv.lock"))
            project = project_build_settings(data, where=str(given.file))
        else:  # no pyproject: no build settings but the ABI pins from the lock
            from_input = input_lock(given, settings, chosen, egress=egress, index=index)
            if from_input.lock is None:
                _blocked(from_input.blocked_by or "?", chosen, output_json)
                return
            lock = from_input.lock
            project = ProjectBuildSettings()
        result = plan_project(lock, project, chosen, abi_pins=settings.abi_pins)
    except WheelwrightError as exc:
        raise fail(exc) from None
    if output_json:
        print(json.dumps(plan_json(result), indent=2))
    else:
        _show(result)


def chosen_target(
    environments: Mapping[str, EnvironmentSpec],
    environment: str | None,
    kind: Literal["cpu", "cuda"],
    cuda: str | None,
    python: str,
) -> Target:
    if environment is None:
        try:
            return Target(kind=kind, cuda=cuda, python=python)
        except ValueError as exc:
            raise InvalidRequestError(f"bad target: {exc}") from None
    spec = environments.get(environment)
    if spec is None:
        known = ", ".join(sorted(environments)) or "none are configured"
        raise InvalidRequestError(f"unknown environment {environment!r} (known: {known})")
    return spec.target


def _blocked(pin: str, target: Target, output_json: bool) -> None:
    """uv cannot lock the project before `pin` is built: the first wave is known, no more."""
    if output_json:
        print(json.dumps({"target": target.model_dump(), "blocked_by": pin}, indent=2))
        return
    err.print(
        f"uv cannot lock this project without building [bold]{escape(pin)}[/]: it has no wheel "
        f"and only its build tells its dependencies. Build it for {target.label} first "
        f"(wheelwright build {escape(pin)} ...), then plan again with the environment's index "
        "in front (--index URL).",
        soft_wrap=True,
    )


def plan_json(result: ProjectPlan) -> dict[str, object]:
    return {
        "target": result.target.model_dump(),
        "waves": [list(wave) for wave in result.generations],
        "build": [
            {
                "name": node.name,
                "version": node.version,
                "reason": node.reason,
                "runtime": list(node.runtime),
                "after": list(node.after),
            }
            for node in (result.nodes[name] for name in result.order)
        ],
        "from_wheels": list(result.installable),
    }


def _show(result: ProjectPlan) -> None:
    label = result.target.label
    if not result.nodes:
        err.print(
            f"nothing to build: all {len(result.installable)} packages the project installs "
            f"on {label} have a wheel for it"
        )
        return
    table = Table(title=f"to build for {label}, wave by wave", title_justify="left")
    for column in ("wave", "package", "why", "runtime (installed first)", "after"):
        table.add_column(column)
    for number, wave in enumerate(result.generations, start=1):
        for name in wave:
            node = result.nodes[name]
            table.add_row(
                str(number),
                escape(node.pin),
                escape(node.reason),
                escape(", ".join(node.runtime) or "-"),
                escape(", ".join(node.after) or "-"),
            )
    err.print(table)
    err.print(
        f"{len(result.nodes)} to build in {len(result.generations)} waves; "
        f"{len(result.installable)} install from wheels"
    )
