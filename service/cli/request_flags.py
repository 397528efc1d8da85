"""The flags that shape a build request, defined once for `wheelwright build` and `submit`.

`@request_flags` adds every flag of `FLAGS` to a Typer command (same names, same help, same
defaults) and hands them to it as one `RequestFlags`; `RequestFlags.fields` turns them into the
request's fields the same way for both commands.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal

import typer

from service.cli.common import SMOKE_HELP, pairs, smoke_code

#: (name, annotation, default) of each flag, in the order `--help` shows them.
FLAGS: tuple[tuple[str, Any, Any], ...] = (
    ("target", Annotated[Literal["cpu", "cuda"], typer.Option(help="cpu or cuda image")], "cpu"),
    ("cuda", Annotated[str | None, typer.Option(help="CUDA version of a cuda target")], None),
    ("python", Annotated[str, typer.Option(help="Python version, like 3.11")], "3.11"),
    (
        "image",
        Annotated[str | None, typer.Option(help="use this image instead of the default")],
        None,
    ),
    (
        "environment",
        Annotated[
            str | None,
            typer.Option(help="a named environment of the configuration; it decides the rest"),
        ],
        None,
    ),
    (
        "runtime",
        Annotated[list[str] | None, typer.Option("--runtime", "-r", help="runtime pin")],
        None,
    ),
    (
        "build_requires",
        Annotated[list[str] | None, typer.Option("--build-requires", help="extra build dep")],
        None,
    ),
    (
        "config_setting",
        Annotated[
            list[str] | None,
            typer.Option("--config-setting", "-C", help="NAME=VALUE for the build backend"),
        ],
        None,
    ),
    (
        "env",
        Annotated[list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE")],
        None,
    ),
    ("index_url", Annotated[str | None, typer.Option(help="the package index")], None),
    (
        "extra_index_url",
        Annotated[list[str] | None, typer.Option(help="another package index")],
        None,
    ),
    (
        "find_links",
        Annotated[list[str] | None, typer.Option(help="a wheel folder or URL")],
        None,
    ),
    (
        "no_index",
        Annotated[
            bool, typer.Option("--no-index", help="no package index: only --find-links (offline)")
        ],
        False,
    ),
    (
        "verify_import",
        Annotated[list[str] | None, typer.Option("--import", help="a module verify imports")],
        None,
    ),
    ("smoke_test", Annotated[str | None, typer.Option(help=SMOKE_HELP)], None),
    (
        "local_label",
        Annotated[
            str | None,
            typer.Option(help="stamp +LABEL on the version; 'auto': like cu130torch2.13"),
        ],
        None,
    ),
    (
        "timeout",
        Annotated[int | None, typer.Option(help="deadline of the whole build, seconds")],
        None,
    ),
    (
        "no_compiler_cache",
        Annotated[
            bool, typer.Option("--no-compiler-cache", help="build without the compiler cache")
        ],
        False,
    ),
)
DEFAULT_TARGET = {"kind": "cpu", "cuda": None, "python": "3.11", "image": None}


@dataclass(frozen=True)
class RequestFlags:
    """The values of `FLAGS`, as given on the command line."""

    target: str = "cpu"
    cuda: str | None = None
    python: str = "3.11"
    image: str | None = None
    environment: str | None = None
    runtime: list[str] | None = None
    build_requires: list[str] | None = None
    config_setting: list[str] | None = None
    env: list[str] | None = None
    index_url: str | None = None
    extra_index_url: list[str] | None = None
    find_links: list[str] | None = None
    no_index: bool = False
    verify_import: list[str] | None = None
    smoke_test: str | None = None
    local_label: str | None = None
    timeout: int | None = None
    no_compiler_cache: bool = False

    def fields(self, default_index: dict[str, Any] | None = None) -> dict[str, Any]:
        """The request's fields, but its source.

        Given a named environment, only what was given is sent, and the environment's own
        settings are checked against it (a flag it decides is refused). Without one, the
        request is an ad-hoc environment: `default_index` (the local settings' index, for
        `build`) counts as given; without it, the index is sent only where a flag names one.
        """
        named_index = self.index_url or self.extra_index_url or self.find_links or self.no_index
        index = dict(default_index or {})
        if self.index_url:
            index["index_url"] = self.index_url
        index["extra_index_urls"] = [
            *index.get("extra_index_urls", ()),
            *(self.extra_index_url or ()),
        ]
        index["find_links"] = [*index.get("find_links", ()), *(self.find_links or ())]
        index["no_index"] = bool(index.get("no_index")) or self.no_index
        target = {
            "kind": self.target,
            "cuda": self.cuda,
            "python": self.python,
            "image": self.image,
        }
        given: dict[str, Any] = {
            "target": target,
            "runtime": self.runtime,
            "build_requires": self.build_requires,
            "config_settings": pairs(self.config_setting, "--config-setting"),
            "build_env": pairs(self.env, "--env"),
            "index": index if named_index or (default_index and not self.environment) else None,
            "local_label": self.local_label,
        }
        if self.environment is not None and target == DEFAULT_TARGET:
            del given["target"]  # the defaults are not a choice the environment must refuse
        out: dict[str, Any] = {
            "environment": self.environment,
            "verify_imports": self.verify_import or None,
            "verify_smoke": smoke_code(self.smoke_test),
            "timeout_s": self.timeout,
            **({"compiler_cache": False} if self.no_compiler_cache else {}),
            **{name: value for name, value in given.items() if value},
        }
        return {name: value for name, value in out.items() if value is not None}


def request_flags(command: Callable[..., None]) -> Callable[..., None]:
    """Give a Typer command every request flag; it takes them as `flags: RequestFlags`."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "flags"]
    names = [name for name, _annotation, _default in FLAGS]
    if names != [f.name for f in fields(RequestFlags)]:  # pragma: no cover  (a definition bug)
        raise TypeError("FLAGS and RequestFlags must name the same flags in the same order")
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)
        for name, hint, default in FLAGS
    ]

    @functools.wraps(command)
    def with_flags(**kwargs: Any) -> None:
        flags = RequestFlags(**{name: kwargs.pop(name) for name in names})
        command(flags=flags, **kwargs)

    parameters = [
        *[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own],
        *shared,
    ]
    with_flags.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_flags.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return with_flags
