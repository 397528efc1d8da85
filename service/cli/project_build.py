"""`wheelwright project build`: every package a project is missing for one environment, built in
order, then the uv configuration that installs exactly those from our index."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from service.cli.common import err, fail, settings_for
from service.cli.embedded import embedded_service, served_index
from service.cli.project import _target, project_app
from service.config import Settings
from service.errors import BuildFailedError, InvalidRequestError, WheelwrightError
from service.logging import configure_logging
from service.models import Target
from service.project.build import ProjectBuild, ProjectResult
from service.project.environment import (
    ProjectEnvironment,
    project_abi_pins,
    project_environment,
)
from service.project.inputs import (
    InputLock,
    ProjectInput,
    find_input,
    input_lock,
    input_project,
)
from service.project.run import ProjectProgress
from service.project.uvconfig import direct_dependencies, uv_config_text, write_uv_config

STATE_STYLE = {"built": "green", "cached": "green", "failed": "red", "not built": "red"}


@project_app.command("build")
def build(
    path: Annotated[
        Path,
        typer.Argument(
            help="the project: a folder (pyproject.toml and uv.lock, else pylock.toml, else "
            "requirements.txt) or one such file"
        ),
    ],
    target: Annotated[Literal["cpu", "cuda"], typer.Option(help="cpu or cuda image")] = "cpu",
    cuda: Annotated[str | None, typer.Option(help="CUDA version of a cuda target")] = None,
    python: Annotated[str, typer.Option(help="Python version, like 3.11")] = "3.11",
    environment: Annotated[
        str | None, typer.Option(help="a named environment of the config file")
    ] = None,
    url: Annotated[
        str, typer.Option(help="where the service serves the index (served here if loopback)")
    ] = "http://127.0.0.1:8000",
    workers: Annotated[int, typer.Option(min=1, max=64, help="builds at once")] = 2,
    executor: Annotated[str | None, typer.Option(help="docker (default) or host")] = None,
    write: Annotated[
        bool, typer.Option("--write", help="write the uv configuration into pyproject.toml")
    ] = False,
    output_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log each stage")] = False,
) -> None:
    """Build every package the project has no wheel for (in order: a package after those its
    build installs) and print the uv configuration that takes them from our index."""
    started = time.monotonic()
    configure_logging(json_logs=False, quiet=not verbose)
    try:
        settings = settings_for(executor)
        given = find_input(path)
        folder = given.folder
        chosen = _target(settings.environments, environment, target, cuda, python)
        pyproject = folder / "pyproject.toml"
        other = None if given.has_pyproject else input_project(given, settings, chosen)
        if other is not None and write:
            raise InvalidRequestError(
                f"--write edits a pyproject.toml, and {given.file} is a {given.kind.value}: "
                "the uv configuration is printed instead; run without --write"
            )
        pins = project_abi_pins(folder, settings, chosen) if other is None else other.abi_pins
        env = project_environment(
            settings,
            given.file,
            target=chosen,
            environment=environment,
            base_url=url,
            abi_pins=pins,
            data=None if other is None else other.data,
        )
        lock_input = None
        if other is not None:
            lock_input = _lock_input(given, env.settings(settings), chosen, env.index_url)
        result = _run(
            folder, env.settings(settings), env, pins, url, workers, output_json, lock_input
        )
        built = result.built
        direct = (
            direct_dependencies(tomllib.loads(pyproject.read_text(encoding="utf-8")))
            if other is None
            else other.direct
        )
        config = uv_config_text(env.index_url, built, direct=direct) if built else ""
        if write and built:
            write_uv_config(pyproject, env.index_url, built)
    except WheelwrightError as exc:
        raise fail(exc) from None
    seconds = time.monotonic() - started
    if output_json:
        print(json.dumps(_as_json(result, env.name, env.index_url, config, seconds), indent=2))
    else:
        _report(result, env.name, config, write, seconds)
    if result.progress.failed:
        raise typer.Exit(BuildFailedError.exit_code)


def _lock_input(
    given: ProjectInput, settings: Settings, target: Target, index: str
) -> Callable[[tuple[str, ...]], InputLock]:
    """The lock of a pylock.toml or requirements.txt, our environment's page in front."""
    return lambda fresh: input_lock(given, settings, target, index=index, fresh=fresh)


def _run(
    folder: Path,
    settings: Settings,
    env: ProjectEnvironment,
    pins: dict[str, str],
    url: str,
    workers: int,
    quiet: bool,
    lock_input: Callable[[tuple[str, ...]], InputLock] | None = None,
) -> ProjectResult:
    with embedded_service(settings, workers=workers) as service:
        project: ProjectBuild | None = None

        def table() -> Table | Text:
            return progress_table(project.progress if project else ProjectProgress(), env.name)

        with (
            served_index(service, url) as index,
            Live(get_renderable=table, console=err, refresh_per_second=4, transient=quiet) as live,
        ):
            project = ProjectBuild(
                folder,
                env,
                service.submit,
                service.jobs,
                settings=settings,
                abi_pins=pins,
                on_change=live.refresh,
                on_wave=service.wave.flush,
                before_lock=index.refresh,
                lock_input=lock_input,
            )
            return project.run()


def progress_table(progress: ProjectProgress, environment: str) -> Table | Text:
    if not progress.nodes:
        return Text("locking with building forbidden ...", style="dim")
    now = time.monotonic()
    table = Table(title=f"project build for {environment}", title_justify="left")
    for column in ("wave", "package", "state", "stage", "time", "note"):
        table.add_column(column)
    for node in progress.nodes.values():
        seconds = node.seconds(now)
        style = STATE_STYLE.get(node.state, "yellow")
        table.add_row(
            str(node.wave),
            escape(f"{node.name}=={node.version}"),
            f"[{style}]{node.state}[/]",
            escape(node.stage or "-"),
            f"{seconds:.1f} s" if seconds is not None else "-",
            escape(node.error or node.wheel or node.note or ""),
        )
    return table


def _report(
    result: ProjectResult, environment: str, config: str, write: bool, seconds: float
) -> None:
    progress = result.progress
    if not progress.nodes:
        err.print(
            f"nothing to build: all {len(result.plan.installable)} packages the project installs "
            f"on {result.plan.target.label} have a wheel for it ({seconds:.2f} s)"
        )
        return
    for node in progress.failed:
        err.print(f"[bold red]{escape(node.name)}:[/] {escape(node.error or node.state)}")
    built, new = progress.built, progress.new
    if not new and not progress.failed:
        err.print(
            f"nothing new to build: the {len(built)} packages the project takes from "
            f"{environment} are there already ({seconds:.2f} s)"
        )
    else:
        err.print(
            f"{len(new)} built, {len(built) - len(new)} there already, "
            f"{len(progress.failed)} not built, on {environment} ({seconds:.2f} s)"
        )
    if config:
        if write:
            err.print("pyproject.toml now takes them from our index:")
        print(config, end="")


def _as_json(
    result: ProjectResult, environment: str, index_url: str, config: str, seconds: float
) -> dict[str, object]:
    return {
        "environment": environment,
        "index_url": index_url,
        "packages": result.progress.as_json(time.monotonic()),
        "failed": [node.name for node in result.progress.failed],
        "from_wheels": list(result.plan.installable),
        "uv_config": config,
        "seconds": round(seconds, 3),
    }
