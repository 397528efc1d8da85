"""Package recipes: what a known package needs to build that its sdist does not say.

flash-attn downloads a wheel from GitHub unless `FLASH_ATTENTION_FORCE_BUILD=TRUE` and reads its
architectures from `FLASH_ATTN_CUDA_ARCHS`; torch-scatter builds eight extensions one after
another; deepspeed compiles nothing unless `DS_BUILD_OPS=1`. A user should not have to know.
The recipes live in `service/recipes.toml` (the project's) and in the config file's
`[[recipes]]` (the operator's, tried first). `apply_recipe` fills a request's gaps with the
matching recipe where the request is prepared, so the request key and the manifest (the
request's `recipe`) say what was applied; the worker's plan turns the recipe's memory per job,
threads and architecture variable into the build's environment (`worker/plan.py`).
A request's own values always win: its `build_env`, its build requirements of the same name.
"""

from __future__ import annotations

import fnmatch
import tomllib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename
from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.errors import ConfigError, InvalidRequestError
from service.models import (
    ALLOWED_BUILD_ENV,
    AppliedRecipe,
    ArchiveSource,
    BuildRequest,
    RequirementSource,
)

if TYPE_CHECKING:
    from service.config import Settings

RECIPES_FILE = Path(__file__).with_name("recipes.toml")
GIB = 1024**3


class Recipe(BaseModel):
    """One package's recipe, for a range of its versions (the fields: `recipes.toml`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    package: str
    versions: str = Field(default="", description="a PEP 440 specifier set; empty: all")
    env: dict[str, str] = Field(default_factory=dict)
    cuda_env: dict[str, str] = Field(default_factory=dict)
    arch_env: str | None = None
    arch_format: Literal["torch", "digits"] = "torch"
    fixed_archs: str | None = None
    job_memory_gib: float | None = Field(default=None, gt=0)
    nvcc_threads: int | None = Field(default=None, ge=1)
    build_requires: tuple[str, ...] = ()
    parallel_extensions: bool = False

    @field_validator("package")
    @classmethod
    def _name(cls, value: str) -> str:
        return canonicalize_name(value)

    @field_validator("versions")
    @classmethod
    def _specifier(cls, value: str) -> str:
        try:
            return str(SpecifierSet(value))
        except InvalidSpecifier:
            raise ValueError(f"versions {value!r} is not a PEP 440 specifier set") from None

    @field_validator("env", "cuda_env")
    @classmethod
    def _allowed(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not any(fnmatch.fnmatchcase(name, p) for p in ALLOWED_BUILD_ENV):
                raise ValueError(f"recipe env {name!r} is not an allow-listed build variable")
        return env

    @field_validator("arch_env")
    @classmethod
    def _arch_env(cls, name: str | None) -> str | None:
        if name is not None and not any(fnmatch.fnmatchcase(name, p) for p in ALLOWED_BUILD_ENV):
            raise ValueError(f"arch_env {name!r} is not an allow-listed build variable")
        return name

    @field_validator("build_requires")
    @classmethod
    def _requirements(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            try:
                Requirement(value)
            except InvalidRequirement:
                raise ValueError(f"build requirement {value!r} is not valid") from None
        return values

    @property
    def label(self) -> str:
        return f"{self.package}{self.versions}"

    def matches(self, name: str, version: str) -> bool:
        spec = SpecifierSet(self.versions)
        return canonicalize_name(name) == self.package and spec.contains(
            Version(version), prereleases=True
        )


@cache
def builtin_recipes() -> tuple[Recipe, ...]:
    """The project's recipes, `service/recipes.toml`."""
    return load_recipes(RECIPES_FILE)


def load_recipes(path: Path) -> tuple[Recipe, ...]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return tuple(Recipe.model_validate(entry) for entry in data.get("recipe", ()))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"the recipes in {path} cannot be read: {exc}") from None


def package_of(request: BuildRequest) -> tuple[str, str] | None:
    """The (name, version) a request builds, where the request says it: a `name==version`
    requirement, or an archive named like an sdist. None for trees and git sources."""
    source = request.source
    if isinstance(source, RequirementSource):
        requirement = Requirement(source.requirement)
        version = next(iter(requirement.specifier)).version
        return requirement.name, version
    if isinstance(source, ArchiveSource):
        try:
            name, parsed = parse_sdist_filename(Path(source.path).name)
        except InvalidSdistFilename:
            return None
        return name, str(parsed)
    return None


Origin = Literal["builtin", "config"]


def find_recipe(name: str, version: str, settings: Settings) -> tuple[Recipe, Origin] | None:
    """The first recipe for `name` at `version` (the config file's, then the project's), and
    where it came from (`config` or `builtin`)."""
    tried: tuple[tuple[Origin, tuple[Recipe, ...]], ...] = (
        ("config", settings.recipes),
        ("builtin", builtin_recipes()),
    )
    for origin, recipes in tried:
        for recipe in recipes:
            if recipe.matches(name, version):
                return recipe, origin
    return None


def apply_recipe(request: BuildRequest, settings: Settings) -> BuildRequest:
    """The request with its package's recipe filled in: env defaults the request does not set,
    build requirements it does not name, and the recipe itself (unchanged without one). A
    request that names a recipe already (one prepared before, a rebuild's inputs) keeps it only
    if it is what this service's recipe applied (`check_applied`)."""
    found = package_of(request)
    matched = find_recipe(*found, settings) if found is not None else None
    if request.recipe is not None:
        check_applied(request, request.recipe, matched)
        return request
    if matched is None:
        return request
    recipe, origin = matched
    defaults = dict(recipe.env)
    if request.target.kind == "cuda":
        defaults |= recipe.cuda_env
    added_env = {k: v for k, v in defaults.items() if k not in request.build_env}
    named = {canonicalize_name(Requirement(r).name) for r in request.build_requires}
    added_requires = tuple(
        r for r in recipe.build_requires if canonicalize_name(Requirement(r).name) not in named
    )
    applied = _applied(recipe, origin).model_copy(
        update={"env": added_env, "build_requires": added_requires}
    )
    return request.model_copy(
        update={
            "build_env": dict(sorted((request.build_env | added_env).items())),
            "build_requires": (*request.build_requires, *added_requires),
            "recipe": applied,
        }
    )


def _applied(recipe: Recipe, origin: Origin) -> AppliedRecipe:
    """What the plan reads of `recipe` (its env and requirements as applied are added)."""
    return AppliedRecipe(
        name=recipe.label,
        origin=origin,
        arch_env=recipe.arch_env,
        arch_format=recipe.arch_format,
        fixed_archs=recipe.fixed_archs,
        job_memory_bytes=None
        if recipe.job_memory_gib is None
        else int(recipe.job_memory_gib * GIB),
        nvcc_threads=recipe.nvcc_threads,
        parallel_extensions=recipe.parallel_extensions,
    )


def check_applied(
    request: BuildRequest, named: AppliedRecipe, matched: tuple[Recipe, Origin] | None
) -> None:
    """`InvalidRequestError` unless `named` is what this service's recipe for the package
    applies: the manifest names the recipe, so a request cannot make one up or change it."""
    problem = None
    if matched is None:
        problem = "this service has no recipe for the package"
    else:
        recipe, origin = matched
        defaults = recipe.env | (recipe.cuda_env if request.target.kind == "cuda" else {})
        expected = _applied(recipe, origin)
        if named.model_copy(update={"env": {}, "build_requires": ()}) != expected:
            problem = f"this service's recipe for the package is {recipe.label!r} ({origin})"
        elif any(
            defaults.get(k) != v or request.build_env.get(k) != v for k, v in named.env.items()
        ):
            problem = "its env is not the recipe's defaults as the request carries them"
        elif not set(named.build_requires) <= set(recipe.build_requires) & set(
            request.build_requires
        ):
            problem = "its build requirements are not the recipe's as the request carries them"
    if problem:
        raise InvalidRequestError(
            f"the request names the recipe {named.name!r}, which is not what was applied: "
            f"{problem} (the service applies recipes itself; leave `recipe` out)"
        )
