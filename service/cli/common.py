"""What every `wheelwright` command shares: the Typer app, the error console, settings."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from service.config import Settings, load_settings
from service.errors import BuildFailedError, WheelwrightError
from service.printable import printable

app = typer.Typer(
    name="wheelwright",
    help="Build wheels that cannot be built in isolation, once, and serve them as an index.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
images_app = typer.Typer(help="Build images.", no_args_is_help=True)
app.add_typer(images_app, name="images")
err = Console(stderr=True, highlight=False)


def shown(text: object) -> str:
    """Text a build or a service sent, ready for `err.print`: no markup, no control character
    (`service.printable`): what a package prints never steers the terminal."""
    return escape(printable(str(text)))


def fail(exc: WheelwrightError) -> typer.Exit:
    where = f" in stage {exc.stage}" if exc.stage and not isinstance(exc, BuildFailedError) else ""
    err.print(f"[bold red]error{where}:[/] {shown(exc)}", soft_wrap=True)
    if isinstance(exc, BuildFailedError) and exc.log_tail:
        err.print("[dim]--- last lines of the log ---[/]")
        err.print(printable(exc.log_tail), markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def settings_for(executor: str | None) -> Settings:
    overrides: dict[str, object] = {}
    if executor:
        overrides["executor"] = executor
    return load_settings(**overrides)


SMOKE_HELP = (
    "Python code that verify runs when the build has a GPU (launch a kernel, compare with the "
    "CPU); @FILE reads it from a file"
)


def smoke_code(value: str | None) -> str | None:
    """`--smoke-test`: the code itself, or `@FILE` for the code in a file."""
    if value is None or not value.startswith("@"):
        return value
    path = Path(value[1:]).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"--smoke-test {value}: cannot read {path}: {exc}") from None


def pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{flag} takes NAME=VALUE, got {item!r}")
        pairs[name] = value
    return pairs
