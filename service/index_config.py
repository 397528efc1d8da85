"""What a user pastes to install from Wheelwright: the uv and pip configuration of one index."""

from __future__ import annotations

from collections.abc import Sequence

from packaging.utils import canonicalize_name

from service.layout import check_environment

INDEX_NAME = "wheelwright"
PYPI = "https://pypi.org/simple"


def index_url(base_url: str, environment: str) -> str:
    """`http://host/simple/<environment>/` for a service at `base_url`."""
    return f"{base_url.rstrip('/')}/simple/{check_environment(environment)}/"


def render_uv_config(base_url: str, environment: str, packages: Sequence[str]) -> str:
    """The `pyproject.toml` block: an explicit index, and the packages that come from it."""
    names = sorted({canonicalize_name(p) for p in packages})
    lines = [
        "[[tool.uv.index]]",
        f'name = "{INDEX_NAME}"',
        f'url = "{index_url(base_url, environment)}"',
        "explicit = true",
        "",
        "[tool.uv.sources]",
        *(f'{name} = {{ index = "{INDEX_NAME}" }}' for name in names),
    ]
    return "\n".join(lines) + "\n"


def render_pip_config(base_url: str, environment: str, packages: Sequence[str]) -> str:
    """One-off commands for `uv pip` and `pip` that take our packages only from our index.

    pip has no per-package index: with `--extra-index-url` it takes the highest version from
    either index, so an unrelated PyPI project of the same name would win. Hence two steps:
    ours from our index alone (no dependencies), then the dependencies from PyPI.
    """
    url = index_url(base_url, environment)
    names = " ".join(sorted({canonicalize_name(p) for p in packages}))
    return (
        "\n".join(
            [
                "# uv pip: the named index is searched first, other packages come from PyPI",
                f"uv pip install --index {INDEX_NAME}={url} {names}".rstrip(),
                "# pip: ours from our index alone, then their dependencies from PyPI",
                f"pip install --no-deps --only-binary :all: --index-url {url} {names}".rstrip(),
                f"pip install --index-url {PYPI} {names}".rstrip(),
            ]
        )
        + "\n"
    )


def render_index_config(base_url: str, environment: str, packages: list[str]) -> str:
    """Both blocks, commented, as `wheelwright index-config` prints them."""
    return (
        "# pyproject.toml (uv sync / uv lock)\n"
        + render_uv_config(base_url, environment, packages)
        + "\n"
        + render_pip_config(base_url, environment, packages)
    )
