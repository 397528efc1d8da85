"""Named environments from the config file decide how a request builds and where it is served."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import load_settings
from service.environments import apply_environment
from service.errors import ConfigError, InvalidRequestError
from service.keys import environment_name, request_key
from service.models import parse_request

CONFIG = """
[environments.cpu-torch2-13]
target = { kind = "cpu", python = "3.11" }
runtime = ["torch==2.13.0"]
build_env = { MAX_JOBS = "4" }
index = { find_links = ["/opt/wheels"] }

[environments.cu130-torch2-13]
target = { kind = "cuda", cuda = "13.0" }
runtime = ["torch==2.13.0"]
verify_smoke = "import torch; assert torch.ones(1, device='cuda').item() == 1"
"""
SOURCE = {"kind": "requirement", "requirement": "torch-scatter==2.1.2"}


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    config = tmp_path / "wheelwright.toml"
    config.write_text(CONFIG)
    monkeypatch.setenv("WHEELWRIGHT_CONFIG", str(config))
    return load_settings(home=tmp_path)


def test_a_named_environment_fills_the_request(settings) -> None:  # type: ignore[no-untyped-def]
    request = apply_environment(
        parse_request({"source": SOURCE, "environment": "cpu-torch2-13"}), settings
    )
    assert request.runtime == ("torch==2.13.0",)
    assert request.build_env == {"MAX_JOBS": "4"}
    assert request.index.find_links == ("/opt/wheels",)
    assert environment_name(request, "img") == "cpu-torch2-13"
    cuda = apply_environment(
        parse_request({"source": SOURCE, "environment": "cu130-torch2-13"}), settings
    )
    assert cuda.target.kind == "cuda"
    assert request_key(cuda, "img") != request_key(request, "img")


def test_unknown_or_overridden_environment_is_refused(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequestError, match=r"unknown environment 'nope' \(known: cpu-"):
        apply_environment(parse_request({"source": SOURCE, "environment": "nope"}), settings)
    clash = parse_request(
        {"source": SOURCE, "environment": "cpu-torch2-13", "runtime": ["torch==2.4.0"]}
    )
    with pytest.raises(InvalidRequestError, match="decides runtime; leave them out"):
        apply_environment(clash, settings)
    with pytest.raises(InvalidRequestError, match="not a valid name"):
        parse_request({"source": SOURCE, "environment": "Bad Name"})


def test_a_request_without_environment_is_unchanged(settings) -> None:  # type: ignore[no-untyped-def]
    request = parse_request({"source": SOURCE, "runtime": ["torch==2.4.0"]})
    assert apply_environment(request, settings) is request
    assert environment_name(request, "img").startswith("cpu-py311-torch2.4.0-")


def test_a_bad_config_file_names_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[environments.x]\ntarget = { kind = "tpu" }\n')
    monkeypatch.setenv("WHEELWRIGHT_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"environments\.x\.target\.kind"):
        load_settings()
    monkeypatch.setenv("WHEELWRIGHT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_the_smoke_test_comes_from_the_environment_unless_the_request_gives_one(
    settings,  # type: ignore[no-untyped-def]
) -> None:
    named = {"source": SOURCE, "environment": "cu130-torch2-13"}
    inherited = apply_environment(parse_request(named), settings)
    assert inherited.verify_smoke == "import torch; assert torch.ones(1, device='cuda').item() == 1"
    own = apply_environment(parse_request({**named, "verify_smoke": "import x"}), settings)
    assert own.verify_smoke == "import x"
    none = apply_environment(
        parse_request({"source": SOURCE, "environment": "cpu-torch2-13"}), settings
    )
    assert none.verify_smoke is None
