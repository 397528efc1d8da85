"""`wheelwright images build` and `wheelwright reap`: the machine's build images and leftovers."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from service.cli.common import app, err, fail, images_app, settings_for
from service.errors import WheelwrightError


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
        settings = settings_for(None)
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
        raise fail(exc) from None
    print(image_id)


@app.command()
def reap(executor: Annotated[str | None, typer.Option()] = None) -> None:
    """Remove containers and processes that dead builds left behind."""
    from worker.executors import make_executor

    try:
        removed = make_executor(settings_for(executor)).reap()
    except WheelwrightError as exc:
        raise fail(exc) from None
    err.print(f"removed {removed} leftover(s)")
