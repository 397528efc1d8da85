"""Request -> frozen stage descriptions. Pure: no Docker, no files, no network.

The executor decides where things are (its `Layout`); this module decides what each stage does,
with which environment and network policy. Unit tests check plans without running anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from service.models import BuildRequest

StageName = Literal["runtime", "build_deps", "requires", "requires_install", "build", "verify"]
STAGES: tuple[StageName, ...] = (
    "runtime",
    "build_deps",
    "requires",
    "requires_install",
    "build",
    "verify",
)
#: Which package cache a stage gets: `shared` (the team's, writable: only stages that run no
#: package or dependency code), `build` (this build's own, thrown away), `none`.
CacheUse = Literal["shared", "build", "none"]

DEFAULT_CUDA_ARCHS = "8.0;9.0;10.0;12.0+PTX"
GIB = 1024**3
#: Memory one parallel compile job may take (nvcc on torch headers peaks near this).
MEMORY_PER_JOB = 2 * GIB


@dataclass(frozen=True)
class Layout:
    """Where the driver sees things, as paths inside the container (or on the host)."""

    work: str
    driver: str
    python: str
    uv: str
    find_links: tuple[str, ...] = ()
    path_prefix: tuple[str, ...] = ()
    #: The venv sees the packages of `python` (host executor on an offline node): requirements
    #: they satisfy are not installed.
    host_packages: bool = False
    #: where the build stage sees the project's compiler cache; None: this executor has none
    compiler_cache: str | None = None

    def __post_init__(self) -> None:
        for name in ("work", "driver"):
            if not getattr(self, name).startswith("/"):
                raise ValueError(f"layout {name} must be an absolute path")

    @property
    def venv(self) -> str:
        return f"{self.work}/env"

    @property
    def snapshot(self) -> str:
        return f"{self.work}/runtime"

    @property
    def outdir(self) -> str:
        return f"{self.work}/out"

    @property
    def io(self) -> str:
        return f"{self.work}/io"


@dataclass(frozen=True)
class Machine:
    """What the executor can give one build."""

    cpus: int
    memory_bytes: int


@dataclass(frozen=True)
class BuildInputs:
    """What the worker decided for this build beyond the request: its fixed timestamp and
    whether (and how large) the compiler cache is."""

    source_date_epoch: int | None = None
    compiler_cache_bytes: int | None = None  # None: no compiler cache for this build


@dataclass(frozen=True)
class StagePlan:
    name: StageName
    network: bool
    request: Mapping[str, Any]
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    cache: CacheUse = "none"

    def with_network(self) -> StagePlan:
        """The same stage with the network on (a backend that cannot answer offline)."""
        return replace(self, network=True)

    def with_inputs(self, **inputs: Any) -> StagePlan:
        """The same stage with values only known once earlier stages ran (the wheel's path)."""
        return replace(self, request={**self.request, **inputs})

    def argv(self, layout: Layout) -> list[str]:
        return [
            layout.python,
            f"{layout.driver}/run.py",
            self.name,
            f"{layout.io}/{self.name}.request.json",
            f"{layout.io}/{self.name}.result.json",
        ]


@dataclass(frozen=True)
class BuildPlan:
    stages: tuple[StagePlan, ...]
    build_env: Mapping[str, str]

    def stage(self, name: StageName) -> StagePlan:
        return next(s for s in self.stages if s.name == name)


def max_jobs(machine: Machine) -> int:
    """Parallel compile jobs that fit both the cores and the memory."""
    return max(1, min(machine.cpus, machine.memory_bytes // MEMORY_PER_JOB))


def build_env(
    request: BuildRequest, machine: Machine, source_date_epoch: int | None = None
) -> dict[str, str]:
    """Defaults for the backend, overridden by the request's allow-listed variables."""
    env = {"MAX_JOBS": str(max_jobs(machine))}
    if request.target.kind == "cuda":
        env |= {"TORCH_CUDA_ARCH_LIST": DEFAULT_CUDA_ARCHS, "FORCE_CUDA": "1"}
    if source_date_epoch is not None:  # what reproducible-builds tools stamp instead of "now"
        env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
    return env | dict(request.build_env)


def compiler_cache(layout: Layout, inputs: BuildInputs) -> dict[str, Any] | None:
    """The build stage's compiler cache: sccache's folder, its size and the wrappers' place,
    all at fixed paths (hits need the same paths in every build)."""
    if layout.compiler_cache is None or inputs.compiler_cache_bytes is None:
        return None
    return {
        "dir": layout.compiler_cache,
        "max_bytes": inputs.compiler_cache_bytes,
        "wrappers": f"{layout.work}/tmp/compiler-cache/bin",
    }


def index_args(request: BuildRequest, layout: Layout) -> list[str]:
    if request.index.no_index:
        return ["--no-index", *(arg for loc in layout.find_links for arg in ("--find-links", loc))]
    args = ["--index-url", request.index.index_url]
    for url in request.index.extra_index_urls:
        args += ["--extra-index-url", url]
    if request.index.extra_index_urls:
        args += ["--index-strategy", "unsafe-best-match"]
    for location in layout.find_links:
        args += ["--find-links", location]
    return args


def make_plan(
    request: BuildRequest,
    layout: Layout,
    machine: Machine,
    *,
    source_root: str = "src",
    inputs: BuildInputs | None = None,
) -> BuildPlan:
    """The executor stages of one build (fetch and publish happen in the worker)."""
    inputs = inputs or BuildInputs()
    source = f"{layout.work}/{source_root}"
    env = build_env(request, machine, inputs.source_date_epoch)
    common = {
        "uv": layout.uv,
        "index_args": index_args(request, layout),
        "venv": layout.venv,
        "cuda": request.target.kind == "cuda",
        "inherit_packages": layout.host_packages,
    }
    config = dict(request.config_settings)
    stages = (
        StagePlan(
            "runtime",
            network=True,
            request={**common, "runtime": list(request.runtime), "snapshot": layout.snapshot},
            cache="shared",  # wheels only (--no-build), and no interpreter of the venv runs
        ),
        StagePlan(
            "build_deps",
            network=True,
            request={
                **common,
                "source": source,
                "extra": list(request.build_requires),
                "ensure_ninja": True,
            },
            env=MappingProxyType(env),
            cache="build",
        ),
        StagePlan(
            "requires",
            network=False,  # the package's own code: asked offline first
            request={**common, "source": source, "config": config},
            env=MappingProxyType(env),
        ),
        StagePlan(
            "requires_install",
            network=True,
            request={**common, "requires": []},
            cache="build",
        ),
        StagePlan(
            "build",
            network=False,
            request={
                **common,
                "source": source,
                "outdir": layout.outdir,
                "config": config,
                "compiler_cache": compiler_cache(layout, inputs),
            },
            env=MappingProxyType(env),
        ),
        StagePlan(
            "verify",
            network=False,
            request={
                **common,
                "snapshot": layout.snapshot,
                "imports": list(request.verify_imports or ()),
                "scratch": f"{layout.work}/tmp",
                "cuda_arch_list": env.get("TORCH_CUDA_ARCH_LIST"),
                "smoke": request.verify_smoke,
            },
        ),
    )
    return BuildPlan(stages=stages, build_env=MappingProxyType(env))
