"""`wheelwright build` and `wheelwright submit` shape a request with one set of flags."""

from __future__ import annotations

import pytest
import typer
from typer.core import TyperGroup
from typer.main import get_command

from service.cli import app
from service.cli.request_flags import FLAGS, RequestFlags
from service.models import IndexSettings, parse_request


def _options(name: str) -> dict[str, tuple[tuple[str, ...], str | None]]:
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    command = group.commands[name]
    return {
        param.name: (tuple(param.opts), getattr(param, "help", None))
        for param in command.params
        if param.name is not None
    }


def test_build_and_submit_take_the_same_request_flags() -> None:
    build, submit = _options("build"), _options("submit")
    for name, _annotation, _default in FLAGS:
        assert build[name] == submit[name], name
        assert build[name][1], f"--{name} has no help"
    assert {"executor", "out", "output_json", "verbose"} <= set(build) - set(submit)
    assert {"server", "token", "wait", "wait_margin"} <= set(submit) - set(build)


def test_an_ad_hoc_request_counts_the_local_index_as_given() -> None:
    local = IndexSettings(find_links=("/opt/wheels",)).model_dump()
    flags = RequestFlags(
        target="cuda",
        runtime=["torch==2.13.0"],
        env=["MAX_JOBS=4"],
        find_links=["/srv/more"],
        no_compiler_cache=True,
        timeout=600,
    )
    fields = flags.fields(default_index=local)
    request = parse_request({"source": {"kind": "requirement", "requirement": "a==1"}, **fields})
    assert request.index.find_links == ("/opt/wheels", "/srv/more")
    assert (request.target.kind, request.runtime) == ("cuda", ("torch==2.13.0",))
    assert (request.build_env, request.compiler_cache, request.timeout_s) == (
        {"MAX_JOBS": "4"},
        False,
        600,
    )
    # submit: the service's own index settings apply unless a flag names an index
    assert "index" not in RequestFlags().fields()
    assert RequestFlags(no_index=True).fields()["index"]["no_index"] is True


def test_a_named_environment_gets_only_what_was_given() -> None:
    assert RequestFlags(environment="cu130").fields(default_index={}) == {"environment": "cu130"}
    given = RequestFlags(environment="cu130", runtime=["torch"]).fields()
    assert given == {"environment": "cu130", "runtime": ["torch"]}  # the service refuses it


def test_bad_pairs_name_the_flag() -> None:
    with pytest.raises(typer.BadParameter, match="--env takes NAME=VALUE"):
        RequestFlags(env=["novalue"]).fields()
