"""`wheelwright project submit`: a project built by a service (what a CI job runs): the folder
uploaded as an archive, or a git URL at a ref; with `--wait`, the table of packages printed as
it changes, and a non-zero exit naming each package that was not built."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from service.cli.common import err, fail, shown
from service.cli.project import project_app
from service.cli.project_lines import ProgressLines
from service.errors import BuildFailedError, InvalidRequestError, WaitTimeoutError, WheelwrightError
from service.printable import printable

GIT_PREFIXES = ("https://", "ssh://", "file://", "git+")
ENDED = ("succeeded", "failed", "cancelled")
STATE_STYLE = {"built": "green", "cached": "green", "failed": "red", "not built": "red"}


@project_app.command("submit")
def submit(
    source: Annotated[
        str, typer.Argument(help="the project folder (or its .tar.gz/.zip), or a git URL")
    ],
    server: Annotated[str, typer.Option(envvar="WHEELWRIGHT_SERVER", help="the service URL")],
    token: Annotated[str | None, typer.Option(envvar="WHEELWRIGHT_TOKEN")] = None,
    ref: Annotated[str, typer.Option(help="the git ref of a git URL")] = "HEAD",
    environment: Annotated[
        str | None, typer.Option(help="a named environment of the service")
    ] = None,
    target: Annotated[Literal["cpu", "cuda"], typer.Option(help="cpu or cuda image")] = "cpu",
    cuda: Annotated[str | None, typer.Option(help="CUDA version of a cuda target")] = None,
    python: Annotated[str, typer.Option(help="Python version, like 3.11")] = "3.11",
    wait: Annotated[
        bool, typer.Option(help="print progress until it ends; exit non-zero if it failed")
    ] = False,
    timeout: Annotated[int, typer.Option(min=1, help="seconds --wait waits at most")] = 6 * 3600,
    poll: Annotated[float, typer.Option(min=0.1, help="seconds between polls")] = 2.0,
) -> None:
    """Send a project to a Wheelwright service to build every package it is missing."""
    from service.client import Client

    fields: dict[str, Any] = (
        {"environment": environment}
        if environment
        else {"target": target, "python": python, "cuda": cuda}
    )
    fields = {k: v for k, v in fields.items() if v is not None}
    try:
        upload = _source(source, ref, fields)
        with Client(server, token) as client:
            started = client.submit_project(fields, upload)
            err.print(f"project build {started['id']} queued: {started['url']}", soft_wrap=True)
            if not wait:
                print(started["id"])
                return
            state = follow(client, started["id"], time.monotonic() + timeout, poll)
    except WheelwrightError as exc:
        raise fail(exc) from None
    report(state)


def _source(source: str, ref: str, fields: dict[str, Any]) -> Path | None:
    """The path to upload, or None where `source` is a git URL (put into `fields`)."""
    if source.startswith(GIT_PREFIXES):
        fields["git"] = {"url": source.removeprefix("git+"), "ref": ref}
        return None
    path = Path(source).expanduser()
    if not path.exists():
        raise InvalidRequestError(f"{source} is neither a folder, an archive nor a git URL")
    if path.is_dir() and not (path / "pyproject.toml").is_file():
        raise InvalidRequestError(f"{path} has no pyproject.toml")
    return path


def follow(client: Any, project_build_id: str, deadline: float, poll_s: float) -> dict[str, Any]:
    """Poll until the project build ends, printing the table each time it changes (on a
    terminal; in a CI log, a line per package's change of state or stage)."""
    shown: str | None = None
    lines = None if err.is_terminal else ProgressLines()
    said = None
    while True:
        state: dict[str, Any] = client.get_project(project_build_id)
        seen = json.dumps(_without_times(state), sort_keys=True)
        if seen != shown:
            shown = seen
            if lines is None:
                err.print(table(state))
            else:
                lines.update_rows(state["packages"])
                if state["state"] != said:
                    said = state["state"]
                    sys.stderr.write(f"project build {project_build_id}: {printable(said)}\n")
        if state["state"] in ENDED:
            return state
        if time.monotonic() > deadline:
            raise WaitTimeoutError(
                f"gave up waiting; project build {project_build_id} is still {state['state']}"
            )
        time.sleep(poll_s)


def _without_times(state: dict[str, Any]) -> dict[str, Any]:
    packages = [{k: v for k, v in p.items() if k != "seconds"} for p in state["packages"]]
    return {**state, "packages": packages}


def table(state: dict[str, Any]) -> Table:
    title = f"project build {state['id']} for {state['environment'] or '?'}: {state['state']}"
    grid = Table(title=shown(title), title_justify="left")
    for column in ("wave", "package", "state", "stage", "time", "note"):
        grid.add_column(column)
    for node in state["packages"]:
        style = STATE_STYLE.get(node["state"], "yellow")
        seconds = node.get("seconds")
        grid.add_row(
            str(node["wave"]),
            shown(f"{node['name']}=={node['version']}"),
            f"[{style}]{shown(node['state'])}[/]",
            shown(node.get("stage") or "-"),
            f"{seconds:.1f} s" if seconds is not None else "-",
            shown(node.get("error") or node.get("wheel") or node.get("note") or ""),
        )
    return grid


def report(state: dict[str, Any]) -> None:
    """The end: the uv configuration on stdout, or each failed package and a non-zero exit;
    in a CI log, first a summary of every package, its name never cut."""
    if not err.is_terminal:
        ProgressLines().summary_rows(state["packages"])
    if state["state"] == "succeeded":
        if not state["packages"]:
            err.print("nothing to build: every package the project installs has a wheel")
        config = state.get("uv_config") or ""
        if config:
            print(config, end="")
        return
    failed = [p for p in state["packages"] if p["state"] in ("failed", "not built", "cancelled")]
    for node in failed:
        err.print(
            f"[bold red]{shown(node['name'])}:[/] {shown(node.get('error') or '')}", soft_wrap=True
        )
    if not failed:
        err.print(f"[bold red]project build failed:[/] {shown(str(state.get('error')))}")
    raise typer.Exit(BuildFailedError.exit_code)
