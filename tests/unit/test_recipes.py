"""Package recipes (service/recipes.py, worker/recipe_env.py): applied where the request is
prepared, overridden by the request's own values and by the operator's config, matched by
version range, and turned into the build's environment for the worker's machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Settings, load_settings
from service.errors import ConfigError, InvalidRequestError
from service.keys import request_key
from service.models import parse_request
from service.prepare import prepare
from service.recipes import builtin_recipes, find_recipe, load_recipes
from worker.plan import GIB, Layout, Machine, make_plan
from worker.recipe_env import from_digits, to_digits

LAYOUT = Layout(work="/ww/work", driver="/ww/driver", python="python3", uv="uv")
GPU_NODE = Machine(cpus=16, memory_bytes=128 * GIB)


def _settings(tmp_path: Path, **update: object) -> Settings:
    return Settings(home=tmp_path / "home", **update)  # type: ignore[arg-type]


def _cuda(requirement: str, **fields: object) -> dict[str, object]:
    return {
        "source": {"kind": "requirement", "requirement": requirement},
        "target": {"kind": "cuda", "cuda": "13.0"},
        "runtime": ["torch==2.13.0"],
        **fields,
    }


def test_flash_attn_gets_its_recipe_where_the_request_is_prepared(tmp_path: Path) -> None:
    request = parse_request(_cuda("flash-attn==2.8.3", build_env={"TORCH_CUDA_ARCH_LIST": "9.0"}))
    prepared = prepare(request, _settings(tmp_path))
    got = prepared.request
    assert got.recipe is not None and got.recipe.name == "flash-attn>=2.0"
    assert got.recipe.origin == "builtin"
    assert got.build_env["FLASH_ATTENTION_FORCE_BUILD"] == "TRUE"
    assert got.recipe.env == {"FLASH_ATTENTION_FORCE_BUILD": "TRUE"}
    assert {"psutil", "ninja", "packaging", "einops", "wheel"} <= set(got.build_requires)
    # the request key is the recipe's too: the same request without one keys differently
    assert prepared.key != request_key(request, prepared.image)

    plan = make_plan(got, LAYOUT, GPU_NODE)
    env = plan.build_env
    assert env["FLASH_ATTN_CUDA_ARCHS"] == "90"  # derived, in flash-attn's own form
    assert env["MAX_JOBS"] == "14"  # 128 GiB / 9 GiB per job, under 16 cores
    assert env["NVCC_THREADS"] == "1"  # 14 jobs x 1 thread fit 16 cores
    assert plan.stage("verify").request["cuda_arch_list"] == "9.0"  # what the audit checks
    assert plan.stage("build").request["parallel_extensions"] is None


def test_the_request_overrides_every_value(tmp_path: Path) -> None:
    request = parse_request(
        _cuda(
            "flash-attn==2.8.3",
            build_env={
                "FLASH_ATTENTION_FORCE_BUILD": "FALSE",
                "FLASH_ATTN_CUDA_ARCHS": "80;120",
                "MAX_JOBS": "3",
                "NVCC_THREADS": "2",
            },
            build_requires=["ninja==1.11.1.1"],
        )
    )
    got = prepare(request, _settings(tmp_path)).request
    assert got.recipe is not None
    assert got.recipe.env == {}  # every default was the request's already
    assert got.build_env["FLASH_ATTENTION_FORCE_BUILD"] == "FALSE"
    assert [r for r in got.build_requires if r.startswith("ninja")] == ["ninja==1.11.1.1"]
    plan = make_plan(got, LAYOUT, GPU_NODE)
    assert plan.build_env["MAX_JOBS"] == "3"
    assert plan.build_env["NVCC_THREADS"] == "2"
    assert plan.build_env["FLASH_ATTN_CUDA_ARCHS"] == "80;120"
    assert plan.stage("verify").request["cuda_arch_list"] == "8.0;12.0"


def test_version_ranges_pick_the_recipe(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    new = find_recipe("causal-conv1d", "1.7.0", settings)
    old = find_recipe("Causal_Conv1d", "1.5.2", settings)
    assert new is not None and new[0].label == "causal-conv1d>=1.7"
    assert old is not None and old[0].label == "causal-conv1d<1.7"
    assert find_recipe("flash-attn", "1.0.9", settings) is None  # below every range
    assert find_recipe("flash-attn", "2.9.0rc1", settings) is not None  # pre-releases too
    assert find_recipe("unknown-package", "1.0", settings) is None
    # a hard-coded -gencode list is what the audit checks, whatever TORCH_CUDA_ARCH_LIST says
    request = prepare(
        parse_request(_cuda("causal-conv1d==1.7.0", build_env={"TORCH_CUDA_ARCH_LIST": "9.0"})),
        settings,
    ).request
    verify = make_plan(request, LAYOUT, GPU_NODE).stage("verify")
    assert verify.request["cuda_arch_list"] == "7.5;8.0;8.7;9.0;10.0;12.0;10.3;11.0;12.1"


def test_the_config_file_replaces_a_recipe_for_its_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "wheelwright.toml"
    config.write_text(
        "[[recipes]]\n"
        'package = "flash-attn"\n'
        'versions = ">=2.8,<2.9"\n'
        'env = { FLASH_ATTENTION_FORCE_BUILD = "TRUE", FLASH_ATTN_CUDA_ARCHS = "90" }\n'
        "job_memory_gib = 16\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("WHEELWRIGHT_CONFIG", str(config))
    monkeypatch.setenv("WHEELWRIGHT_HOME", str(tmp_path / "home"))
    settings = load_settings()
    got = prepare(parse_request(_cuda("flash-attn==2.8.3")), settings).request
    assert got.recipe is not None and got.recipe.origin == "config"
    assert got.recipe.name == "flash-attn<2.9,>=2.8"
    assert got.build_env["FLASH_ATTN_CUDA_ARCHS"] == "90"
    assert not any(r.startswith("einops") for r in got.build_requires)  # the whole recipe
    assert make_plan(got, LAYOUT, GPU_NODE).build_env["MAX_JOBS"] == "8"  # 128 / 16
    # outside the config's range the project's recipe still applies
    older = prepare(parse_request(_cuda("flash-attn==2.7.4")), settings).request
    assert older.recipe is not None and older.recipe.origin == "builtin"


def test_many_extensions_build_side_by_side(tmp_path: Path) -> None:
    request = prepare(parse_request(_cuda("torch-scatter==2.1.2")), _settings(tmp_path)).request
    assert request.build_env["FORCE_CUDA"] == "1"
    plan = make_plan(request, LAYOUT, Machine(cpus=16, memory_bytes=24 * GIB))
    assert plan.build_env["MAX_JOBS"] == "1"  # one job per extension ...
    assert plan.stage("build").request["parallel_extensions"] == 12  # ... 12 at once (24 / 2)
    # the request's own MAX_JOBS: the extensions fill what it leaves
    own = prepare(
        parse_request(_cuda("torch-scatter==2.1.2", build_env={"MAX_JOBS": "4"})),
        _settings(tmp_path),
    ).request
    plan = make_plan(own, LAYOUT, Machine(cpus=16, memory_bytes=128 * GIB))
    assert plan.build_env["MAX_JOBS"] == "4"
    assert plan.stage("build").request["parallel_extensions"] == 4


def test_cpu_target_gets_no_cuda_env(tmp_path: Path) -> None:
    request = parse_request({"source": {"kind": "requirement", "requirement": "deepspeed==0.19.8"}})
    got = prepare(request, _settings(tmp_path)).request
    assert got.recipe is not None
    assert "DS_BUILD_OPS" not in got.build_env
    cuda = prepare(parse_request(_cuda("deepspeed==0.19.8")), _settings(tmp_path)).request
    assert cuda.build_env["DS_BUILD_OPS"] == "1"


def test_archive_named_like_an_sdist_gets_its_recipe(tmp_path: Path) -> None:
    archive = tmp_path / "flash_attn-2.8.3.tar.gz"
    archive.write_bytes(b"not read for the recipe, only digested")
    request = parse_request(
        {"source": {"kind": "archive", "path": str(archive)}, "target": {"kind": "cuda"}}
    )
    got = prepare(request, _settings(tmp_path)).request
    assert got.recipe is not None and got.recipe.name == "flash-attn>=2.0"


def test_arch_forms() -> None:
    assert to_digits("8.0;9.0a;12.0+PTX;Hopper") == "80;90a;120"
    assert from_digits("80;90a;120") == "8.0;9.0a;12.0"


def test_a_recipe_may_set_only_allow_listed_variables(tmp_path: Path) -> None:
    bad = tmp_path / "recipes.toml"
    bad.write_text('[[recipe]]\npackage = "x"\nenv = { LD_PRELOAD = "/evil.so" }\n')
    with pytest.raises(ConfigError, match="LD_PRELOAD"):
        load_recipes(bad)
    bad.write_text('[[recipe]]\npackage = "x"\nversions = "two"\n')
    with pytest.raises(ConfigError, match="specifier"):
        load_recipes(bad)
    names = {recipe.package for recipe in builtin_recipes()}
    assert {
        "flash-attn",
        "causal-conv1d",
        "mamba-ssm",
        "torch-scatter",
        "torch-sparse",
        "torch-cluster",
        "torch-spline-conv",
        "xformers",
        "deepspeed",
    } <= names


def test_a_prepared_request_keeps_its_recipe_and_a_made_up_one_is_refused(tmp_path: Path) -> None:
    """The manifest names the recipe applied, so a request cannot name one of its own: a
    prepared request (a rebuild's inputs) prepares again to the same key, while a recipe the
    service did not apply, or one changed, is refused naming it."""
    settings = _settings(tmp_path)
    request = parse_request(_cuda("flash-attn==2.8.3", build_env={"TORCH_CUDA_ARCH_LIST": "9.0"}))
    prepared = prepare(request, settings)
    again = prepare(prepared.request, settings)
    assert (again.key, again.request) == (prepared.key, prepared.request)

    applied = prepared.request.recipe
    assert applied is not None
    forged = [
        prepared.request.model_copy(update={"recipe": applied.model_copy(update=change)})
        for change in (
            {"name": "flash-attn>=9.0"},
            {"origin": "config"},
            {"job_memory_bytes": 1},
            {"env": {"FLASH_ATTENTION_FORCE_BUILD": "FALSE"}},
            {"build_requires": ("evil==1.0",)},
        )
    ]
    made_up = parse_request(_cuda("modern-ext==1.0")).model_copy(update={"recipe": applied})
    for bad in (*forged, made_up):
        with pytest.raises(InvalidRequestError, match=r"names the recipe .* not what was applied"):
            prepare(bad, settings)
