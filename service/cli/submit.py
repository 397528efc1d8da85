"""`wheelwright submit`: send a build to a service and follow it (what a CI job runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import app, err, fail, shown
from service.cli.request_flags import RequestFlags, request_flags
from service.errors import WaitTimeoutError, WheelwrightError
from service.printable import printable
from service.specs import parse_spec

#: How long `submit --wait` waits past the build's deadline (queueing, publish, the log's end).
WAIT_MARGIN_S = 300


@app.command()
@request_flags
def submit(
    spec: Annotated[str, typer.Argument(help="name==version, an sdist, a folder, git+URL@ref")],
    flags: RequestFlags,
    server: Annotated[str, typer.Option(envvar="WHEELWRIGHT_SERVER", help="the service URL")],
    token: Annotated[str | None, typer.Option(envvar="WHEELWRIGHT_TOKEN")] = None,
    wait: Annotated[bool, typer.Option(help="follow the log; exit non-zero if it fails")] = False,
    wait_margin: Annotated[
        int, typer.Option(help="seconds --wait waits past the build's deadline")
    ] = WAIT_MARGIN_S,
) -> None:
    """Send a build to a Wheelwright service (what a CI job runs)."""
    from service.client import Client

    started = time.monotonic()
    path = Path(spec).expanduser()
    upload = path if path.exists() else None
    fields: dict[str, object] = flags.fields()  # the service's own settings fill in the rest
    try:
        if upload is None:
            fields["source"] = parse_spec(spec).model_dump(exclude_none=True)
        with Client(server, token) as client:
            answer = client.submit(fields, upload)
            if answer["cached"]:
                err.print(f"[green]cached[/] {answer['artifact']['filename']}", soft_wrap=True)
                print(answer["index_url"])
                return
            build_id = answer["build"]["build"]["id"]
            joined = " (joined a build already running)" if answer["joined"] else ""
            err.print(f"build {build_id} queued{joined}: {answer['build']['url']}", soft_wrap=True)
            if not wait:
                print(build_id)
                return
            budget = int(answer["build"].get("deadline_s") or 3600) + wait_margin
            deadline = started + budget
            try:
                for line in client.follow_log(build_id, deadline):
                    err.print(printable(line), markup=False, highlight=False, soft_wrap=True)
            except WaitTimeoutError:
                state = client.get(build_id)["build"]["state"]
                raise WaitTimeoutError(
                    f"gave up waiting after {budget} s (the build's deadline plus"
                    f" {wait_margin} s); build {build_id} is still {state}:"
                    f" {answer['build']['url']}"
                ) from None
            record = client.get(build_id)["build"]
    except WheelwrightError as exc:
        raise fail(exc) from None
    if record["state"] != "succeeded":
        stage = f" in stage {record['error_stage']}" if record.get("error_stage") else ""
        err.print(f"[red]build {build_id} {record['state']}{stage}:[/] {shown(record['error'])}")
        raise typer.Exit(12 if record["state"] == "cancelled" else 10)
    err.print(f"[green]built[/] {record['artifact']['filename']}", soft_wrap=True)
    print(answer["index_url"])
