"""Request -> frozen stage descriptions. Pure: no Docker, no files, no network.

The executor decides where things are (its `Layout`); this module decides what each stage does,
with which environment and network policy. Unit tests check plans without running anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar

from service.models import BuildRequest
from worker.driver.contract import (
    STAGES,
    BuildDepsRequest,
    CommonRequest,
    CompilerCacheRequest,
    RequiresInstallRequest,
    RequiresRequest,
    RuntimeRequest,
    StageName,
    VerifyRequest,
    WheelRequest,
)
from worker.recipe_env import RecipeBuild, audit_arch_list, jobs_for, recipe_build

R = TypeVar("R", bound=Mapping[str, Any])
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
    #: where the stages that may write the team's package cache see it
    shared_cache: str = "/ww/cache"
    #: where stages see the CA bundle to trust (a TLS-intercepting proxy); None: none given
    ca: str | None = None

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
class StagePlan(Generic[R]):
    """One stage: its driver request (a TypedDict of `worker/driver/contract.py`) and every
    policy the executor applies to it: the network, the package cache, the environment, how
    the runtime snapshot and the compiler cache are seen, and whether a failure offline is
    asked again online."""

    name: StageName
    network: bool
    request: R
    #: the stage's whole environment but PATH, proxies and what the executor passes through
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    cache: CacheUse = "none"
    #: the runtime snapshot is mounted read-only over the workspace's copy (docker)
    snapshot_read_only: bool = False
    #: the project's compiler cache is mounted (writable) where `Layout.compiler_cache` says
    compiler_cache: bool = False
    #: a failure offline (but a deadline) runs the stage again with the network on
    retry_online: bool = False

    def with_network(self) -> StagePlan[R]:
        """The same stage with the network on (a backend that cannot answer offline)."""
        env = {k: v for k, v in self.env.items() if k != "UV_OFFLINE"}
        return replace(self, network=True, env=MappingProxyType(env))

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
    runtime: StagePlan[RuntimeRequest]
    build_deps: StagePlan[BuildDepsRequest]
    requires: StagePlan[RequiresRequest]
    requires_install: StagePlan[RequiresInstallRequest]
    build: StagePlan[WheelRequest]
    verify: StagePlan[VerifyRequest]
    build_env: Mapping[str, str]

    @property
    def stages(self) -> tuple[StagePlan[Any], ...]:
        """The stages in the order they run."""
        return tuple(getattr(self, name) for name in STAGES)

    def stage(self, name: StageName) -> StagePlan[Any]:
        return next(s for s in self.stages if s.name == name)


def with_requires(
    stage: StagePlan[RequiresInstallRequest], requires: list[str]
) -> StagePlan[RequiresInstallRequest]:
    """The requires_install stage with what the backend asked for."""
    request = stage.request.copy()
    request["requires"] = list(requires)
    return replace(stage, request=request)


def with_wheel(stage: StagePlan[VerifyRequest], wheel: str) -> StagePlan[VerifyRequest]:
    """The verify stage with the built wheel, as the stage sees it."""
    request = stage.request.copy()
    request["wheel"] = wheel
    return replace(stage, request=request)


def max_jobs(machine: Machine) -> int:
    """Parallel compile jobs that fit both the cores and the memory."""
    return jobs_for(machine.cpus, machine.memory_bytes, MEMORY_PER_JOB)


def build_env(
    request: BuildRequest, machine: Machine, source_date_epoch: int | None = None
) -> dict[str, str]:
    """Defaults for the backend, overridden by the request's allow-listed variables, then what
    the request's package recipe works out for this machine (never over the request's own)."""
    return _build_env(request, machine, source_date_epoch)[0]


def _build_env(
    request: BuildRequest, machine: Machine, source_date_epoch: int | None
) -> tuple[dict[str, str], RecipeBuild]:
    env = {"MAX_JOBS": str(max_jobs(machine))}
    if request.target.kind == "cuda":
        env |= {"TORCH_CUDA_ARCH_LIST": DEFAULT_CUDA_ARCHS, "FORCE_CUDA": "1"}
    if source_date_epoch is not None:  # what reproducible-builds tools stamp instead of "now"
        env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
    env |= request.build_env
    recipe = recipe_build(
        request,
        env,
        cpus=machine.cpus,
        memory_bytes=machine.memory_bytes,
        default_jobs=max_jobs(machine),
    )
    return env | recipe.env, recipe


def stage_env(layout: Layout, *, network: bool, cache: CacheUse) -> dict[str, str]:
    """The environment every stage gets from its policy: its own home and temporary folder,
    the package cache it may use, the network it has, and the CA bundle to trust."""
    shared = cache == "shared"
    env = {
        "HOME": f"{layout.work}/home",
        "TMPDIR": f"{layout.work}/tmp",
        "UV_CACHE_DIR": f"{layout.shared_cache}/uv" if shared else f"{layout.work}/tmp/uv-cache",
        # copies, never links into the cache: a later stage may write into the venv
        "UV_LINK_MODE": "copy",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if layout.ca is not None:
        env |= {"PIP_CERT": layout.ca, "SSL_CERT_FILE": layout.ca, "REQUESTS_CA_BUNDLE": layout.ca}
    if not network:
        env["UV_OFFLINE"] = "1"
    if cache == "none":
        env["UV_NO_CACHE"] = "1"
    return env


def stage_plan(
    name: StageName,
    request: R,
    layout: Layout,
    *,
    network: bool,
    cache: CacheUse = "none",
    env: Mapping[str, str] | None = None,
    snapshot_read_only: bool = False,
    compiler_cache: bool = False,
    retry_online: bool = False,
) -> StagePlan[R]:
    """A stage with its environment: the policy's, then the build's (`env`)."""
    return StagePlan(
        name,
        network,
        request,
        env=MappingProxyType(stage_env(layout, network=network, cache=cache) | dict(env or {})),
        cache=cache,
        snapshot_read_only=snapshot_read_only,
        compiler_cache=compiler_cache,
        retry_online=retry_online,
    )


def compiler_cache(layout: Layout, inputs: BuildInputs) -> CompilerCacheRequest | None:
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
    env, recipe = _build_env(request, machine, inputs.source_date_epoch)
    common: CommonRequest = {
        "uv": layout.uv,
        "index_args": index_args(request, layout),
        "venv": layout.venv,
        "cuda": request.target.kind == "cuda",
        "inherit_packages": layout.host_packages,
    }
    config = dict(request.config_settings)
    cache = compiler_cache(layout, inputs)
    return BuildPlan(
        runtime=stage_plan(
            "runtime",
            {**common, "runtime": list(request.runtime), "snapshot": layout.snapshot},
            layout,
            network=True,
            cache="shared",  # wheels only (--no-build), and no interpreter of the venv runs
        ),
        build_deps=stage_plan(
            "build_deps",
            {
                **common,
                "source": source,
                "extra": list(request.build_requires),
                "ensure_ninja": True,
            },
            layout,
            network=True,
            cache="build",
            env=env,
            snapshot_read_only=True,
        ),
        requires=stage_plan(
            "requires",
            {**common, "source": source, "config": config},
            layout,
            network=False,  # the package's own code: asked offline first
            env=env,
            snapshot_read_only=True,
            retry_online=True,  # still without the shared cache; the manifest says so
        ),
        requires_install=stage_plan(
            "requires_install",
            {**common, "requires": []},
            layout,
            network=True,
            cache="build",
            snapshot_read_only=True,
        ),
        build=stage_plan(
            "build",
            {
                **common,
                "source": source,
                "outdir": layout.outdir,
                "config": config,
                "compiler_cache": cache,
                "parallel_extensions": recipe.parallel_extensions,
            },
            layout,
            network=False,
            env=env,
            snapshot_read_only=True,
            compiler_cache=cache is not None,
        ),
        verify=stage_plan(
            "verify",
            {
                **common,
                "wheel": None,
                "snapshot": layout.snapshot,
                "imports": list(request.verify_imports or ()),
                "scratch": f"{layout.work}/tmp",
                "cuda_arch_list": audit_arch_list(request, env),
                "smoke": request.verify_smoke,
            },
            layout,
            network=False,
        ),
        build_env=MappingProxyType(env),
    )
