"""The `wheelwright` command: one surface for people and CI.

`build` runs the whole pipeline in this process (no Redis, no S3): the embedded default. The
worker package is imported only by the commands that run builds, so the API image, which has no
worker, still gets `serve` and `index-config`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from service.config import Settings, load_settings
from service.environments import apply_environment
from service.errors import BuildFailedError, ConfigError, WheelwrightError
from service.keys import new_build_id
from service.logging import configure_logging
from service.models import parse_request
from service.specs import parse_spec

if TYPE_CHECKING:
    from fastapi import FastAPI

    from worker.engine import StageEvent

app = typer.Typer(
    name="wheelwright",
    help="Build wheels that cannot be built in isolation, once, and serve them as an index.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
images_app = typer.Typer(help="Build images.", no_args_is_help=True)
app.add_typer(images_app, name="images")
err = Console(stderr=True, highlight=False)


def _fail(exc: WheelwrightError) -> typer.Exit:
    where = f" in stage {exc.stage}" if exc.stage and not isinstance(exc, BuildFailedError) else ""
    err.print(f"[bold red]error{where}:[/] {escape(str(exc))}")
    if isinstance(exc, BuildFailedError) and exc.log_tail:
        err.print("[dim]--- last lines of the log ---[/]")
        err.print(exc.log_tail, markup=False)
    return typer.Exit(exc.exit_code)


def _settings(executor: str | None) -> Settings:
    overrides: dict[str, object] = {}
    if executor:
        overrides["executor"] = executor
    return load_settings(**overrides)


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
            err.print(f"[dim]{self.stage:>10} |[/] {escape(line)}")
        else:
            self.status.update(f"[bold]{self.stage}[/] [dim]{escape(line[-100:])}[/]")


@app.command()
def build(
    spec: Annotated[
        str, typer.Argument(help="name==version, an sdist/archive, a folder, git+URL@ref")
    ],
    target: Annotated[Literal["cpu", "cuda"], typer.Option(help="cpu or cuda image")] = "cpu",
    cuda: Annotated[str | None, typer.Option(help="CUDA version of a cuda target")] = None,
    python: Annotated[str, typer.Option(help="Python version, like 3.11")] = "3.11",
    image: Annotated[str | None, typer.Option(help="use this image instead of the default")] = None,
    environment: Annotated[
        str | None, typer.Option(help="a named environment of the config file")
    ] = None,
    runtime: Annotated[
        list[str] | None, typer.Option("--runtime", "-r", help="runtime pin")
    ] = None,
    build_requires: Annotated[list[str] | None, typer.Option("--build-requires")] = None,
    config_setting: Annotated[list[str] | None, typer.Option("--config-setting", "-C")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE")] = None,
    index_url: Annotated[str | None, typer.Option()] = None,
    extra_index_url: Annotated[list[str] | None, typer.Option()] = None,
    find_links: Annotated[list[str] | None, typer.Option()] = None,
    verify_import: Annotated[list[str] | None, typer.Option("--import")] = None,
    timeout: Annotated[
        int | None, typer.Option(help="deadline of the whole build, seconds")
    ] = None,
    executor: Annotated[str | None, typer.Option(help="docker or host")] = None,
    output_json: Annotated[bool, typer.Option("--json", help="print the artifact as JSON")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="stream the build log")] = False,
) -> None:
    """Build one wheel in a fresh container and store it; print where the wheel is."""
    from service.store import open_store
    from worker.engine import Hooks
    from worker.executors import make_executor
    from worker.pipeline import build_and_publish

    build_id = new_build_id()
    try:
        settings = _settings(executor)
    except WheelwrightError as exc:
        raise _fail(exc) from None
    try:
        configure_logging(json_logs=False, quiet=not verbose)
        index = settings.index.model_dump()
        if index_url:
            index["index_url"] = index_url
        index["extra_index_urls"] = [*index["extra_index_urls"], *(extra_index_url or [])]
        index["find_links"] = [*index["find_links"], *(find_links or [])]
        given = {
            "target": {"kind": target, "cuda": cuda, "python": python, "image": image},
            "runtime": runtime,
            "build_requires": build_requires,
            "config_settings": _pairs(config_setting, "--config-setting"),
            "build_env": _pairs(env, "--env"),
            "index": index if (index_url or extra_index_url or find_links) else None,
        }
        if environment is None:  # an ad-hoc environment: the defaults count as given
            given["index"] = index
        elif given["target"] == {"kind": "cpu", "cuda": None, "python": "3.11", "image": None}:
            del given["target"]
        request = apply_environment(
            parse_request(
                {
                    "source": parse_spec(spec).model_dump(),
                    "environment": environment,
                    "verify_imports": verify_import or None,
                    "timeout_s": timeout,
                    **{name: value for name, value in given.items() if value},
                }
            ),
            settings,
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
        failure = _fail(exc)
        log_file = settings.home / "logs" / f"{build_id}.log"
        if exc.stage and log_file.is_file():
            err.print(f"full log: {log_file}", soft_wrap=True)
        raise failure from None
    artifact = outcome.artifact
    where = artifact_location(settings, artifact.wheel_key)
    if output_json:
        print(json.dumps({"cached": outcome.cached, "path": where, **artifact.summary()}, indent=2))
    else:
        word = "cached" if outcome.cached else "built"
        err.print(
            f"[green]{word}[/] {artifact.filename} for environment [bold]{artifact.environment}[/]",
            soft_wrap=True,
        )
        print(where)


def artifact_location(settings: Settings, key: str) -> str:
    if settings.store.backend == "local":
        return str(settings.store_dir / key)
    prefix = settings.store.s3_prefix.strip("/")
    return f"s3://{settings.store.s3_bucket}/{prefix + '/' if prefix else ''}{key}"


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{flag} takes NAME=VALUE, got {item!r}")
        pairs[name] = value
    return pairs


@images_app.command("build")
def images_build(
    target: Annotated[Literal["cpu", "cuda"], typer.Option()] = "cpu",
    python: Annotated[str, typer.Option()] = "3.11",
    cuda: Annotated[str, typer.Option()] = "13.0",
    rebuild: Annotated[bool, typer.Option(help="build even if the image exists")] = False,
) -> None:
    """Build a build image (from a debootstrap base when no registry answers)."""
    import docker

    from worker.images import ensure_image

    try:
        settings = _settings(None)
        image_id = ensure_image(
            docker.from_env(),
            target,
            python,
            cuda if target == "cuda" else None,
            base=settings.docker.cuda_base if target == "cuda" else settings.docker.cpu_base,
            offline=settings.docker.offline_base,
            ca_bundle=settings.ca_bundle,
            rebuild=rebuild,
            progress=lambda line: err.print(line, markup=False, highlight=False),
        )
    except WheelwrightError as exc:
        raise _fail(exc) from None
    print(image_id)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve the API and the index. With no broker configured, builds run in this process."""
    import uvicorn

    try:
        settings = load_settings()
        configure_logging(json_logs=True)
        application = _app(settings)
    except WheelwrightError as exc:
        raise _fail(exc) from None
    mode = "Celery workers" if settings.broker_url else "builds in this process"
    err.print(f"serving http://{host}:{port}/ ({mode}); index at /simple/", soft_wrap=True)
    uvicorn.run(application, host=host, port=port, log_level="warning")


def _app(settings: Settings) -> FastAPI:
    """The API; with no broker, it shares its store and job state with an in-process runner."""
    from service.api.app import create_app

    if settings.broker_url:
        return create_app(settings)
    from service.dispatch import InProcessDispatcher
    from service.jobs import MemoryJobs
    from service.store import open_store
    from worker.executors import make_executor
    from worker.runner import Services, run_job

    svc = Services(settings, open_store(settings), MemoryJobs(), make_executor(settings))
    dispatcher = InProcessDispatcher(lambda build_id: run_job(build_id, svc))
    return create_app(settings, store=svc.store, jobs=svc.jobs, dispatcher=dispatcher)


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="comma-separated queues: cpu, cuda")] = "cpu",
    concurrency: Annotated[int, typer.Option(help="builds at once in this worker")] = 1,
) -> None:
    """Run a Celery worker that builds from the given queues (needs WHEELWRIGHT_BROKER_URL)."""
    try:
        settings = load_settings()
        if not settings.broker_url:
            raise ConfigError("a worker needs WHEELWRIGHT_BROKER_URL (redis://...)")
        unknown = set(queues.split(",")) - {"cpu", "cuda"}
        if unknown:
            raise ConfigError(f"unknown queue(s) {', '.join(sorted(unknown))}: use cpu, cuda")
    except WheelwrightError as exc:
        raise _fail(exc) from None
    configure_logging(json_logs=True)
    from worker.celery_app import app as celery_app

    celery_app.worker_main(
        ["worker", "--queues", queues, "--concurrency", str(concurrency), "--loglevel", "INFO"]
    )


@app.command()
def submit(
    spec: Annotated[str, typer.Argument(help="name==version, an sdist, a folder, git+URL@ref")],
    server: Annotated[str, typer.Option(envvar="WHEELWRIGHT_SERVER", help="the service URL")],
    token: Annotated[str | None, typer.Option(envvar="WHEELWRIGHT_TOKEN")] = None,
    target: Annotated[Literal["cpu", "cuda"], typer.Option()] = "cpu",
    cuda: Annotated[str | None, typer.Option()] = None,
    python: Annotated[str, typer.Option()] = "3.11",
    runtime: Annotated[list[str] | None, typer.Option("--runtime", "-r")] = None,
    build_requires: Annotated[list[str] | None, typer.Option("--build-requires")] = None,
    config_setting: Annotated[list[str] | None, typer.Option("--config-setting", "-C")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE")] = None,
    verify_import: Annotated[list[str] | None, typer.Option("--import")] = None,
    timeout: Annotated[int | None, typer.Option(help="deadline of the build, seconds")] = None,
    wait: Annotated[bool, typer.Option(help="follow the log; exit non-zero if it fails")] = False,
) -> None:
    """Send a build to a Wheelwright service (what a CI job runs)."""
    from service.client import Client

    path = Path(spec).expanduser()
    upload = path if path.exists() else None
    fields: dict[str, object] = {
        "target": {"kind": target, "cuda": cuda, "python": python},
        "runtime": runtime or [],
        "build_requires": build_requires or [],
        "config_settings": _pairs(config_setting, "--config-setting"),
        "build_env": _pairs(env, "--env"),
        "verify_imports": verify_import or None,
        "timeout_s": timeout,
    }
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
            for line in client.follow_log(build_id):
                err.print(line, markup=False, highlight=False, soft_wrap=True)
            record = client.get(build_id)["build"]
    except WheelwrightError as exc:
        raise _fail(exc) from None
    if record["state"] != "succeeded":
        stage = f" in stage {record['error_stage']}" if record.get("error_stage") else ""
        err.print(
            f"[red]build {build_id} {record['state']}{stage}:[/] {escape(str(record['error']))}"
        )
        raise typer.Exit(12 if record["state"] == "cancelled" else 10)
    err.print(f"[green]built[/] {record['artifact']['filename']}", soft_wrap=True)
    print(answer["index_url"])


@app.command("index-config")
def index_config(
    environment: Annotated[str, typer.Argument(help="build environment, as `build` printed it")],
    url: Annotated[str, typer.Option(help="where the service answers")] = "http://127.0.0.1:8000",
    package: Annotated[
        list[str] | None, typer.Option("--package", "-p", help="default: all in the environment")
    ] = None,
) -> None:
    """Print the uv and pip configuration that installs from one environment's index."""
    from service.index import IndexCatalog
    from service.index_config import render_index_config
    from service.store import open_store

    try:
        catalog = IndexCatalog(open_store(load_settings()))
        names = package or sorted(catalog.environment(environment).projects)
        print(render_index_config(url, environment, list(names)), end="")
    except WheelwrightError as exc:
        raise _fail(exc) from None


@app.command()
def reap(executor: Annotated[str | None, typer.Option()] = None) -> None:
    """Remove containers and processes that dead builds left behind."""
    from worker.executors import make_executor

    try:
        removed = make_executor(_settings(executor)).reap()
    except WheelwrightError as exc:
        raise _fail(exc) from None
    err.print(f"removed {removed} leftover(s)")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
