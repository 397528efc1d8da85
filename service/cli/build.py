"""`wheelwright build`: the whole pipeline in this process, the embedded default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.common import app, err, fail, settings_for, shown
from service.cli.request_flags import RequestFlags, request_flags
from service.config import Settings
from service.errors import WheelwrightError
from service.keys import new_build_id
from service.logging import configure_logging
from service.models import parse_request
from service.specs import parse_spec

if TYPE_CHECKING:
    from service.store import WheelStore
    from worker.engine import StageEvent
    from worker.pipeline import Outcome


class _Progress:
    """Stage lines on stderr, the newest log line beside a spinner, all lines with --verbose."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.status = err.status("starting", spinner="dots")
        self.stage = ""

    def on_stage(self, event: StageEvent) -> None:
        if event.seconds is None:
            self.stage = event.stage
            self.status.update(f"[bold]{event.stage}[/] …")
            self.status.start()
            return
        self.status.stop()
        mark = "[green]ok[/]" if event.ok else "[red]failed[/]"
        net = "network on" if event.network else "network off"
        err.print(f"  {event.stage:<11} {mark} {event.seconds:7.1f}s  [dim]({net})[/]")

    def on_line(self, line: str) -> None:
        if self.verbose:
            err.print(f"[dim]{self.stage:>10} |[/] {shown(line)}")
        else:
            self.status.update(f"[bold]{self.stage}[/] [dim]{shown(line[-100:])}[/]")


@app.command()
@request_flags
def build(
    spec: Annotated[
        str, typer.Argument(help="name==version, an sdist/archive, a folder, git+URL@ref")
    ],
    flags: RequestFlags,
    executor: Annotated[str | None, typer.Option(help="docker or host")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="also copy the wheel into this folder, like pip wheel -w"),
    ] = None,
    output_json: Annotated[bool, typer.Option("--json", help="print the artifact as JSON")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="stream the build log")] = False,
) -> None:
    """Build one wheel in a fresh container and store it; print where the wheel is."""
    from service.store import open_store
    from worker.engine import Hooks, log_path
    from worker.executors import make_executor
    from worker.pipeline import build_and_publish

    build_id = new_build_id()
    try:
        settings = settings_for(executor)
    except WheelwrightError as exc:
        raise fail(exc) from None
    local_folders = tuple(Path(f) for f in flags.find_links or () if f.startswith("/"))
    if local_folders:  # named on this machine by its own user: the operator's folders
        sources = settings.sources.model_copy(
            update={"find_links": (*settings.sources.find_links, *local_folders)}
        )
        settings = settings.model_copy(update={"sources": sources})
    try:
        configure_logging(json_logs=False, quiet=not verbose)
        request = parse_request(  # prepared (its environment applied) by build_and_publish
            {
                "source": parse_spec(spec).model_dump(),
                **flags.fields(default_index=settings.index.model_dump()),
            }
        )
        progress = _Progress(verbose)
        hooks = Hooks(on_stage=progress.on_stage, on_line=progress.on_line)
        store = open_store(settings)
        try:
            outcome = build_and_publish(
                request, settings, store, make_executor(settings), build_id=build_id, hooks=hooks
            )
        finally:
            progress.status.stop()
    except WheelwrightError as exc:
        failure = fail(exc)
        log_file = log_path(settings, build_id)
        if exc.stage and log_file.is_file():
            err.print(f"full log: {log_file}", soft_wrap=True)
        raise failure from None
    _report(outcome, settings, store, out=out, output_json=output_json)


def _report(
    outcome: Outcome, settings: Settings, store: WheelStore, *, out: Path | None, output_json: bool
) -> None:
    """Where the wheel is (copied into `out` first, if given), as a line or as JSON."""
    artifact = outcome.artifact
    where = artifact_location(settings, artifact.wheel_key)
    if out is not None:
        where = str(copy_wheel(store, artifact.wheel_key, artifact.filename, out))
    if output_json:
        print(json.dumps({"cached": outcome.cached, "path": where, **artifact.summary()}, indent=2))
        return
    word = "cached" if outcome.cached else "built"
    err.print(
        f"[green]{word}[/] {artifact.filename} for environment [bold]{artifact.environment}[/]",
        soft_wrap=True,
    )
    print(where)


def copy_wheel(store: WheelStore, key: str, filename: str, folder: Path) -> Path:
    """The stored wheel copied into `folder` (made if missing), written whole or not at all."""
    folder = folder.expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    partial = folder / f".{filename}.part"
    with store.open(key) as stream, partial.open("wb") as copy:
        shutil.copyfileobj(stream, copy)
    partial.replace(target)
    return target


def artifact_location(settings: Settings, key: str) -> str:
    if settings.store.backend == "local":
        return str(settings.store_dir / key)
    prefix = settings.store.s3_prefix.strip("/")
    return f"s3://{settings.store.s3_bucket}/{prefix + '/' if prefix else ''}{key}"
