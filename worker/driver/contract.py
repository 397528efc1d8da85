"""The contract between the worker and the driver: what each stage takes and what it returns.

The worker writes one request file per stage and the driver writes one result file back:
`{"ok": true, "data": <the stage's result>, "seconds": ...}` or
`{"ok": false, "error": {"kind": <an ErrorKind>, "message": ...}, "seconds": ...}`.
This module is the one place both sides read that shape from. It ships in the driver bundle and
runs under the build image's Python (3.8 or later): it imports nothing but the standard library,
and keeps to what Python 3.8's `typing` has (no `NotRequired`: keys filled in later, or written
only sometimes, live in a `total=False` base; annotations stay strings until the worker reads
them).

`check_result` is the worker's side: a result file lies where the package's code could write
too, so its data is checked against the stage's TypedDict before anyone reads a key.
"""

from __future__ import annotations

import sys
import types
import typing
from typing import Any, Literal, TypedDict

StageName = Literal["runtime", "build_deps", "requires", "requires_install", "build", "verify"]
STAGES: tuple[StageName, ...] = (
    "runtime",
    "build_deps",
    "requires",
    "requires_install",
    "build",
    "verify",
)

#: Why a stage failed, as the driver names it (the worker maps each to an error class).
ErrorKind = Literal[
    "command",  # an installer or tool exited non-zero
    "runtime",  # a runtime pin has no wheel (the runtime stage builds nothing)
    "build_system",  # no pyproject.toml/setup.py, or a [build-system] without requires
    "backend",  # a backend hook failed (the package's own code)
    "backend_unavailable",  # the build backend cannot be imported
    "hook_missing",  # the backend lacks a mandatory hook (build_wheel)
    "tags",  # the wheel's tags do not fit the image's Python and platform
    "verify",  # the wheel does not install or import
    "undefined_symbols",  # the import failed on unresolved symbols
    "cuda_archs",  # an extension lacks an architecture of TORCH_CUDA_ARCH_LIST
    "smoke",  # the smoke test failed on the GPU
    "internal",  # the driver itself crashed (a bug here, not in the package)
]
ERROR_KINDS: tuple[str, ...] = typing.get_args(ErrorKind)
#: Kinds the worker adds when there is no usable result file at all.
NO_RESULT = "no_result"
BAD_RESULT = "bad_result"


class StageError(Exception):
    """A stage failure with a cause the user should read; `kind` names it for the worker."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


# ----------------------------------------------------------------------------- requests


#: Request keys the executor adds to the plan's request (the plan knows nothing of them).
EXECUTOR_KEYS = ("egress",)


class _Egress(TypedDict, total=False):
    #: the worker's egress proxy (a unix socket), where the stage's network goes through it
    #: (docker: a stage with the network has none of its own; `egress.py` forwards to this)
    egress: str


class CommonRequest(_Egress):
    """What every stage gets: the installer, where it installs from, the build venv."""

    uv: str
    index_args: list[str]
    venv: str
    cuda: bool
    inherit_packages: bool


class RuntimeRequest(CommonRequest):
    runtime: list[str]
    snapshot: str


class BuildDepsRequest(CommonRequest):
    source: str
    extra: list[str]
    ensure_ninja: bool


class RequiresRequest(CommonRequest):
    source: str
    config: dict[str, Any]


class RequiresInstallRequest(CommonRequest):
    #: what the requires stage's backend asked for (filled in once that stage ran)
    requires: list[str]


class CompilerCacheRequest(TypedDict):
    dir: str
    max_bytes: int
    wrappers: str


class WheelRequest(CommonRequest):
    """The build stage: `build_wheel` into `outdir`."""

    source: str
    outdir: str
    config: dict[str, Any]
    compiler_cache: CompilerCacheRequest | None
    #: `build_ext --parallel N` through DIST_EXTRA_CONFIG (None: extensions one at a time)
    parallel_extensions: int | None


class VerifyRequest(CommonRequest):
    #: the built wheel, as the verify stage sees it (None until the build stage ran)
    wheel: str | None
    snapshot: str
    imports: list[str]
    scratch: str
    cuda_arch_list: str | None
    smoke: str | None


# ----------------------------------------------------------------------------- results


class _RuntimeInherited(TypedDict, total=False):
    #: every distribution of the host's Python the venv sees (host executor, inherited packages)
    inherited: list[str]


class RuntimeResult(_RuntimeInherited):
    python: str
    freeze: list[str]


class BuildDepsResult(TypedDict):
    build_system: dict[str, Any]
    static: list[str]


class _AskedOnline(TypedDict, total=False):
    #: set by the worker when the backend was asked again with the network on
    network: bool


class RequiresResult(_AskedOnline):
    dynamic: list[str]


class RequiresInstallResult(TypedDict):
    dynamic: list[str]
    freeze: list[str]


class _WheelToolchain(TypedDict, total=False):
    #: tool -> version of the compilers and build tools found (`toolchain.py`)
    toolchain: dict[str, str]


class WheelResult(_WheelToolchain):
    wheel: str
    #: sccache's figures, None when the build had no compiler cache
    compiler_cache: dict[str, Any] | None


class _VerifyCuda(TypedDict, total=False):
    #: the architecture audit of a CUDA wheel (audit.audit_cuda_archs)
    cuda: dict[str, Any]


class VerifyResult(_VerifyCuda):
    imported: list[str]
    tags: list[str]
    gpu: dict[str, Any]


RESULTS: dict[str, Any] = {
    "runtime": RuntimeResult,
    "build_deps": BuildDepsResult,
    "requires": RequiresResult,
    "requires_install": RequiresInstallResult,
    "build": WheelResult,
    "verify": VerifyResult,
}


# ----------------------------------------------------------------------------- the worker's side


def check_result(stage: str, data: object) -> list[str]:
    """What is wrong with `data` as the result of `stage`: one line per problem, [] if nothing.

    Needs Python 3.10 or later (the worker's side only)."""
    shape = RESULTS.get(stage)
    if shape is None:
        return [f"no stage {stage!r}"]
    return _problems(data, shape, "data")


def _problems(value: object, shape: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where} must be an object"]
    hints = typing.get_type_hints(shape, vars(sys.modules[__name__]))
    found = [f"{where} lacks {key!r}" for key in sorted(shape.__required_keys__ - value.keys())]
    for key, hint in hints.items():
        if key in value and not _fits(value[key], hint):
            found.append(f"{where}[{key!r}] is not {_name(hint)}: {type(value[key]).__name__}")
    return found


def _fits(value: object, hint: Any) -> bool:  # noqa: PLR0911  (one answer per kind of hint)
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is typing.Union or origin is getattr(types, "UnionType", None):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if typing.is_typeddict(hint):
        return not _problems(value, hint, "")
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _name(hint: Any) -> str:
    if typing.get_origin(hint) is None and hasattr(hint, "__name__"):
        return str(hint.__name__)
    return str(hint).replace("typing.", "")
