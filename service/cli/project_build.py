"""`wheelwright project build`: every package a project is missing for one environment, built in
order, then the uv configuration that installs exactly those from our index."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from service.cli.common import err, fail, settings_for, shown
from service.cli.embedded import embedded_service, served_index
from service.cli.project import (
    CudaVersion,
    EnvironmentName,
    ProjectPath,
    PythonVersion,
    TargetKind,
    chosen_target,
    project_app,
)
from service.cli.project_lines import ProgressLines
from service.config import Settings
from service.egress import serving_at
from service.errors import BuildFailedError, InvalidRequestError, WheelwrightError
from service.logging import configure_logging
from service.project.build import ProjectBuild, ProjectResult
from service.project.prepared import PreparedProject, prepare_project
from service.project.run import ProjectProgress
from service.project.uvconfig import uv_config_text, write_uv_config

STATE_STYLE = {"built": "green", "cached": "green", "failed": "red", "not built": "red"}


@project_app.command("build")
def build(
    path: ProjectPath,
    target: TargetKind = "cpu",
    cuda: CudaVersion = None,
    python: PythonVersion = "3.11",
    environment: EnvironmentName = None,
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
        # the index served at `url` is this process's own: its builds and uv may reach it
        settings = serving_at(settings_for(executor), url)
        chosen = chosen_target(settings.environments, environment, target, cuda, python)
        ready = prepare_project(path, settings, chosen, environment=environment, base_url=url)
        given, env = ready.given, ready.env
        if write and not given.has_pyproject:
            raise InvalidRequestError(
                f"--write edits a pyproject.toml, and {given.file} is a {given.kind.value}: "
                "the uv configuration is printed instead; run without --write"
            )
        result = _run(ready, settings, url, workers, output_json)
        built = result.built
        config = uv_config_text(env.index_url, built, direct=ready.direct) if built else ""
        if write and built:
            write_uv_config(given.file, env.index_url, built)
    except WheelwrightError as exc:
        raise fail(exc) from None
    seconds = time.monotonic() - started
    if output_json:
        print(json.dumps(_as_json(result, env.name, env.index_url, config, seconds), indent=2))
    else:
        _report(result, env.name, config, write, seconds)
    if result.progress.failed:
        raise typer.Exit(BuildFailedError.exit_code)


def _run(
    ready: PreparedProject, settings: Settings, url: str, workers: int, quiet: bool
) -> ProjectResult:
    """Build `ready` in this process: the builds run with `settings` (the operator's), its
    requests are submitted with `ready.settings` (its environment added)."""
    env = ready.env
    with embedded_service(settings, workers=workers, submit_with=ready.settings) as service:
        project: ProjectBuild | None = None

        def progress() -> ProjectProgress:
            return project.progress if project else ProjectProgress()

        def table() -> Table | Text:
            return progress_table(progress(), env.name)

        with ExitStack() as stack:
            index = stack.enter_context(served_index(service, url))
            if err.is_terminal:  # the live table, redrawn in place
                live = Live(
                    get_renderable=table, console=err, refresh_per_second=4, transient=quiet
                )
                on_change: Callable[[], object] = stack.enter_context(live).refresh
            else:  # a CI log: a line per change, nothing redrawn
                lines = ProgressLines()
                sys.stderr.write(f"locking {ready.given.file} with building forbidden ...\n")
                on_change = lambda: lines.update(progress())  # noqa: E731
            project = ProjectBuild(
                ready.folder,
                env,
                service.submit,
                service.jobs,
                settings=settings,  # the operator's: uv's folders and limits
                egress=ready.egress,
                abi_pins=ready.abi_pins,
                on_change=on_change,
                on_wave=service.wave.flush,
                before_lock=index.refresh,
                lock_input=ready.lock_input,
                pyproject=ready.pyproject,
                lock=ready.lock,
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
            shown(f"{node.name}=={node.version}"),
            f"[{style}]{node.state}[/]",
            shown(node.stage or "-"),
            f"{seconds:.1f} s" if seconds is not None else "-",
            shown(node.error or node.wheel or node.note or ""),
        )
    return table


def _report(
    result: ProjectResult, environment: str, config: str, write: bool, seconds: float
) -> None:
    progress = result.progress
    if not err.is_terminal:  # a CI log: every package, its name never cut
        ProgressLines().summary(progress)
    if not progress.nodes:
        err.print(
            f"nothing to build: all {len(result.plan.installable)} packages the project installs "
            f"on {result.plan.target.label} have a wheel for it ({seconds:.2f} s)"
        )
        return
    for node in progress.failed:
        err.print(
            f"[bold red]{shown(node.name)}:[/] {shown(node.error or node.state)}", soft_wrap=True
        )
    built, new = progress.built, progress.new
    if not new and not progress.failed:
        err.print(
            f"nothing new to build: the {len(built)} packages the project takes from "
            f"{environment} are there already ({seconds:.2f} s)"
        )
    else:
        err.print(
            f"{len(new)} built, {len(built) - len(new)} there already, "
            f"{len(progress.failed)} not built, on {environment} ({seconds:.2f} s)",
            soft_wrap=True,
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
