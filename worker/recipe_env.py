"""A package recipe's part of the build environment, worked out for this worker's machine.

The request carries the recipe applied where it was prepared (`service/recipes.py`: env defaults
and build requirements are already in the request). What depends on the machine is decided here:
MAX_JOBS from the recipe's memory per compile job, NVCC_THREADS capped to the cores, the
package's own architecture variable derived from TORCH_CUDA_ARCH_LIST, `build_ext --parallel`
for packages of many extensions, and the architectures verify's audit must find. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from service.models import BuildRequest

_TORCH_ARCH_RE = re.compile(r"^(\d+)\.(\d+)([af]?)(\+PTX)?$")
_DIGITS_ARCH_RE = re.compile(r"^(\d+)(\d)([af]?)$")


def to_digits(arch_list: str) -> str:
    """`8.0;9.0a;12.0+PTX` -> `80;90a;120` (flash-attn's FLASH_ATTN_CUDA_ARCHS form). Entries
    that are not `X.Y` (named ones such as `Hopper`) are left out."""
    out: list[str] = []
    for entry in re.split(r"[;,\s]+", arch_list.strip()):
        if (match := _TORCH_ARCH_RE.match(entry)) is not None:
            digits = f"{match.group(1)}{match.group(2)}{match.group(3)}"
            if digits not in out:
                out.append(digits)
    return ";".join(out)


def from_digits(arch_list: str) -> str:
    """`80;90a;120` -> `8.0;9.0a;12.0`: the TORCH_CUDA_ARCH_LIST form the audit reads. An entry
    not like that is kept as it is, for the audit to name."""
    out: list[str] = []
    for entry in re.split(r"[;,\s]+", arch_list.strip()):
        match = _DIGITS_ARCH_RE.match(entry)
        if entry:
            out.append(f"{match.group(1)}.{match.group(2)}{match.group(3)}" if match else entry)
    return ";".join(out)


def jobs_for(cpus: int, memory_bytes: int, job_memory: int) -> int:
    """Parallel compile jobs that fit both the cores and the memory."""
    return max(1, min(cpus, memory_bytes // job_memory))


@dataclass(frozen=True)
class RecipeBuild:
    """What a recipe adds to one build: variables, and the extensions built at once."""

    env: dict[str, str] = field(default_factory=dict)
    #: `build_ext --parallel N` (None: setuptools builds the extensions one after another)
    parallel_extensions: int | None = None


def _count(text: str | None) -> int | None:
    """A positive whole number from a request's variable, else None (the backend reads it)."""
    return int(text) if text is not None and text.isdigit() and int(text) > 0 else None


def recipe_build(
    request: BuildRequest,
    env: Mapping[str, str],
    *,
    cpus: int,
    memory_bytes: int,
    default_jobs: int,
) -> RecipeBuild:
    """What the request's recipe adds to `env` (the defaults with the request's own variables
    over them) on a machine of `cpus` and `memory_bytes` (`default_jobs`: the compile jobs it
    fits without a recipe); a variable the request sets is never changed."""
    recipe = request.recipe
    if recipe is None:
        return RecipeBuild()
    given = request.build_env
    added: dict[str, str] = {}
    jobs = default_jobs
    if recipe.job_memory_bytes is not None:
        jobs = jobs_for(cpus, memory_bytes, recipe.job_memory_bytes)
        if "MAX_JOBS" not in given:
            added["MAX_JOBS"] = str(jobs)
    if recipe.nvcc_threads is not None and "NVCC_THREADS" not in given:
        per_job = _count(given.get("MAX_JOBS")) or jobs
        added["NVCC_THREADS"] = str(max(1, min(recipe.nvcc_threads, cpus // per_job)))
    parallel = None
    if recipe.parallel_extensions:
        if "MAX_JOBS" in given:  # the request chose the jobs of one extension: fill the rest
            parallel = max(1, jobs // (_count(given["MAX_JOBS"]) or jobs))
        else:  # one compile job per extension, `jobs` extensions at a time
            added["MAX_JOBS"] = "1"
            parallel = jobs
    arch = recipe.arch_env
    torch_archs = env.get("TORCH_CUDA_ARCH_LIST")
    if request.target.kind == "cuda" and arch and arch not in given and torch_archs:
        added[arch] = to_digits(torch_archs) if recipe.arch_format == "digits" else torch_archs
    return RecipeBuild(added, parallel)


def audit_arch_list(request: BuildRequest, env: Mapping[str, str]) -> str | None:
    """The architectures verify's audit checks, in TORCH_CUDA_ARCH_LIST form: the package's
    hard-coded list, or its own variable, or TORCH_CUDA_ARCH_LIST."""
    recipe = request.recipe
    if recipe is not None and recipe.fixed_archs:
        return recipe.fixed_archs
    if recipe is not None and recipe.arch_env and (value := env.get(recipe.arch_env)):
        return from_digits(value) if recipe.arch_format == "digits" else value
    return env.get("TORCH_CUDA_ARCH_LIST")
