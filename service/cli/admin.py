"""`wheelwright images build`, `wheelwright reap` and `wheelwright admin reindex`: the machine's
build images, its leftovers, and the index catalog rebuilt from the store."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from service.cli.common import app, err, fail, images_app, settings_for
from service.errors import WheelwrightError

admin_app = typer.Typer(help="Operate the service's own data.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")


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


@admin_app.command("reindex")
def admin_reindex(
    workers: Annotated[int, typer.Option(min=1, max=256, help="manifests read at once")] = 16,
) -> None:
    """Rebuild the index catalog (database.url) from the store's manifests: every committed
    manifest gets its row, and rows whose manifest is gone are removed."""
    from service.index.reindex import Progress, reindex
    from service.index.sql import open_catalog
    from service.store import open_store

    def show(step: Progress) -> None:
        rate = step.read / step.elapsed_s if step.elapsed_s > 0 else 0.0
        err.print(f"read {step.read}/{step.total} manifests ({rate:.0f}/s, {step.skipped} skipped)")

    try:
        settings = settings_for(None)
        done = reindex(open_store(settings), open_catalog(settings), workers=workers, progress=show)
    except WheelwrightError as exc:
        raise fail(exc) from None
    print(
        f"reindexed {done.manifests} manifests in {done.elapsed_s:.1f} s "
        f"({done.per_second:.0f}/s): {done.recorded} listed, {done.skipped} skipped, "
        f"{done.removed} removed"
    )
