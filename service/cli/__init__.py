"""The `wheelwright` command: one surface for people and CI.

`build` runs the whole pipeline in this process (no Redis, no S3): the embedded default. The
worker package is imported only by the commands that run builds, so the API image, which has no
worker, still gets `serve` and `index-config`.
"""

from __future__ import annotations

import sys

from service.cli import (
    admin,
    build,
    project,
    project_build,
    project_submit,
    serve,
    submit,
    verify,
)
from service.cli.common import app, err

__all__ = [
    "admin",
    "app",
    "build",
    "main",
    "project",
    "project_build",
    "project_submit",
    "serve",
    "submit",
    "verify",
]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
