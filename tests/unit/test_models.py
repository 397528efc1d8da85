"""Request validation: every bad field is refused with a message that names it."""

from __future__ import annotations

import pytest

from service.errors import InvalidRequestError
from service.models import BuildRequest, Target, parse_request
from service.specs import parse_spec

REQ = {"kind": "requirement", "requirement": "torch-scatter==2.1.2"}


def test_requirement_is_normalized_and_exact() -> None:
    request = parse_request(
        {"source": {"kind": "requirement", "requirement": "Torch_Scatter==2.1.2"}}
    )
    assert request.source.model_dump() == {
        "kind": "requirement",
        "requirement": "torch-scatter==2.1.2",
        "url": None,
        "sha256": None,
    }


def test_a_locked_requirement_names_its_sdist_url_and_digest() -> None:
    sha = "ab" * 32
    url = "https://files.example/torch_scatter-2.1.2.tar.gz"
    request = parse_request(
        {
            "source": {
                "kind": "requirement",
                "requirement": "torch-scatter==2.1.2",
                "url": url,
                "sha256": sha,
            }
        }
    )
    assert request.source.model_dump()["url"] == url
    with pytest.raises(InvalidRequestError, match="sha256 'AB' is not 64 lowercase"):
        parse_request(
            {"source": {"kind": "requirement", "requirement": "a==1", "url": url, "sha256": "AB"}}
        )
    with pytest.raises(InvalidRequestError, match="needs the url of the sdist"):
        parse_request({"source": {"kind": "requirement", "requirement": "a==1", "sha256": sha}})
    with pytest.raises(InvalidRequestError, match="sdist URL 'file:///etc/x' must be an http"):
        parse_request(
            {"source": {"kind": "requirement", "requirement": "a==1", "url": "file:///etc/x"}}
        )


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        ("torch-scatter>=2.1", "must pin one exact version"),
        ("torch-scatter==2.*", "must pin one exact version"),
        ("torch-scatter", "must pin one exact version"),
        ("torch-scatter[x]==2.1.2", "plain 'name==version'"),
        ("not a requirement ==", "not a valid requirement"),
    ],
)
def test_bad_requirements(requirement: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse_request({"source": {"kind": "requirement", "requirement": requirement}})


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"python": "2.7"}, r"target\.python.*not a supported version"),
        ({"python": "3.99"}, "not a supported version"),
        ({"python": "three"}, "not a supported version"),
        ({"kind": "tpu"}, r"target\.kind"),
        ({"kind": "cpu", "cuda": "12.8"}, "a cpu target takes no cuda version"),
        ({"kind": "cuda", "cuda": "twelve"}, "must look like '13.0'"),
    ],
)
def test_bad_targets(target: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse_request({"source": REQ, "target": target})


def test_cuda_target_defaults_its_version() -> None:
    assert Target(kind="cuda").cuda == "13.0"
    assert Target(kind="cuda").label == "cu13.0-py3.11"
    assert Target().label == "cpu-py3.11"


def test_build_env_is_allow_listed() -> None:
    request = parse_request(
        {"source": REQ, "build_env": {"MAX_JOBS": "4", "FLASH_ATTENTION_FORCE_BUILD": "TRUE"}}
    )
    assert request.build_env == {"FLASH_ATTENTION_FORCE_BUILD": "TRUE", "MAX_JOBS": "4"}
    with pytest.raises(InvalidRequestError, match="build env 'LD_PRELOAD' is not allowed"):
        parse_request({"source": REQ, "build_env": {"LD_PRELOAD": "/evil.so"}})


def test_unknown_fields_and_bad_pins_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="surprise: Extra inputs are not permitted"):
        parse_request({"source": REQ, "surprise": 1})
    with pytest.raises(InvalidRequestError, match=r"runtime.*not a valid requirement"):
        parse_request({"source": REQ, "runtime": ["torch=2.4"]})
    with pytest.raises(InvalidRequestError, match="is not a module name"):
        parse_request({"source": REQ, "verify_imports": ["os; rm -rf"]})
    with pytest.raises(InvalidRequestError, match="timeout_s"):
        parse_request({"source": REQ, "timeout_s": 1})


def test_git_commit_and_subdirectory_are_checked() -> None:
    git = {"kind": "git", "url": "https://example.invalid/r.git"}
    with pytest.raises(InvalidRequestError, match="not a full hexadecimal commit"):
        parse_request({"source": {**git, "commit": "abc"}})
    with pytest.raises(InvalidRequestError, match="relative path inside the repo"):
        parse_request({"source": {**git, "subdirectory": "../x"}})


def test_specs(tmp_path: object) -> None:
    assert parse_spec("flash-attn==2.8.3").model_dump(exclude_none=True) == {
        "kind": "requirement",
        "requirement": "flash-attn==2.8.3",
    }
    git = parse_spec("git+https://github.com/o/r.git@v1.2#subdirectory=csrc/pkg")
    assert git.model_dump() == {
        "kind": "git",
        "url": "https://github.com/o/r.git",
        "ref": "v1.2",
        "commit": None,
        "subdirectory": "csrc/pkg",
    }
    assert parse_spec("git+ssh://git@host/o/r.git").model_dump()["ref"] == "HEAD"
    with pytest.raises(InvalidRequestError, match="looks like a path"):
        parse_spec("./missing/pkg-1.0.tar.gz")


def test_requests_are_frozen() -> None:
    request = BuildRequest.model_validate({"source": REQ})
    with pytest.raises(Exception, match="frozen"):
        request.timeout_s = 5  # type: ignore[misc]
