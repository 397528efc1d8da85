"""The validated vocabulary shared by the API, the CLI and the workers.

A `BuildRequest` names a project (`Source`), where it runs (`Target`), what must already be
installed when the backend is asked for its build requirements (`runtime` pins), and the knobs of
the build itself. Everything here is frozen and hashable into a request key (see `keys.py`).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.errors import InvalidRequestError
from service.gitpolicy import check_git_ref, check_git_url

#: Environment variables a request may pass to the build backend. Everything else is dropped, so
#: a build cannot be steered by the worker's own environment and the request key stays honest.
ALLOWED_BUILD_ENV: tuple[str, ...] = (
    "MAX_JOBS",
    "NVCC_THREADS",
    "TORCH_CUDA_ARCH_LIST",
    "FORCE_CUDA",
    "FORCE_ONLY_CPU",
    "CMAKE_ARGS",
    "CMAKE_BUILD_PARALLEL_LEVEL",
    "CFLAGS",
    "CXXFLAGS",
    "LDFLAGS",
    "SETUPTOOLS_SCM_PRETEND_VERSION",
    "*_FORCE_BUILD",
    "*_SKIP_CUDA_BUILD",
    "*_CUDA_ARCHS",
    "*_BUILD_CUDA",
    "DS_BUILD_*",
)

SUPPORTED_PYTHON_MINORS = range(8, 15)
DEFAULT_CUDA = "13.0"
_PYTHON_RE = re.compile(r"^3\.(\d{1,2})$")
_CUDA_RE = re.compile(r"^(\d{2})\.(\d)$")
LOCAL_LABEL_RE = re.compile(r"^[a-z0-9]+(\.[a-z0-9]+)*$")
ENVIRONMENT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
MAX_SMOKE_CHARS = 20_000
_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _requirement(text: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"not a valid requirement {text!r}: {exc}") from None


class RequirementSource(_Frozen):
    """`name==version`, resolved to that version's sdist on the configured index; or, where a
    lock names it, the sdist at `url` (its sha256 checked where the lock records one), and no
    index is asked at all: what a project locked is what is built, from where it was locked."""

    kind: Literal["requirement"] = "requirement"
    requirement: str
    url: str | None = Field(default=None, description="the sdist's URL, as a lock names it")
    sha256: str | None = Field(default=None, description="the sdist's expected sha256")

    @field_validator("url")
    @classmethod
    def _sdist_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "sdist URL")

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_RE.match(value):
            raise ValueError(f"sha256 {value!r} is not 64 lowercase hexadecimal digits")
        return value

    @model_validator(mode="after")
    def _digest_of_a_url(self) -> RequirementSource:
        if self.sha256 is not None and self.url is None:
            raise ValueError("a requirement's sha256 needs the url of the sdist it checks")
        return self

    @field_validator("requirement")
    @classmethod
    def _exact_pin(cls, value: str) -> str:
        req = _requirement(value.strip())
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
            raise ValueError(f"{value!r} must pin one exact version, like 'torch-scatter==2.1.2'")
        if req.url or req.marker or req.extras:
            raise ValueError(
                f"{value!r} must be a plain 'name==version' (no URL, marker or extras)"
            )
        return f"{canonicalize_name(req.name)}=={specs[0].version}"

    @property
    def name(self) -> str:
        return self.requirement.split("==", 1)[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==", 1)[1]


class ArchiveSource(_Frozen):
    """A local sdist or source archive (.tar.gz, .tar.bz2, .tar.xz, .tgz, .zip)."""

    kind: Literal["archive"] = "archive"
    path: str
    sha256: str | None = None
    store_key: str | None = Field(default=None, description="an upload kept in the store")


class DirectorySource(_Frozen):
    """A local source tree (a checkout with a pyproject.toml or setup.py)."""

    kind: Literal["directory"] = "directory"
    path: str
    sha256: str | None = Field(default=None, description="digest of the tree, set when fetched")


class GitSource(_Frozen):
    """A git repository at a ref; `commit` is the full hash the ref resolved to."""

    kind: Literal["git"] = "git"
    url: str
    ref: str = "HEAD"
    commit: str | None = None
    subdirectory: str | None = None

    @field_validator("url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        return check_git_url(value)

    @field_validator("ref")
    @classmethod
    def _plain_ref(cls, value: str) -> str:
        return check_git_ref(value)

    @field_validator("commit")
    @classmethod
    def _full_hash(cls, value: str | None) -> str | None:
        if value is not None and not _SHA_RE.match(value):
            raise ValueError(f"commit {value!r} is not a full hexadecimal commit hash")
        return value

    @field_validator("subdirectory")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or ".." in value.split("/")):
            raise ValueError(f"subdirectory {value!r} must be a relative path inside the repo")
        return value


Source = Annotated[
    RequirementSource | ArchiveSource | DirectorySource | GitSource, Field(discriminator="kind")
]


class Target(_Frozen):
    """Where the build runs: a CPU or CUDA image with one Python."""

    kind: Literal["cpu", "cuda"] = "cpu"
    python: str = "3.11"
    cuda: str | None = None
    image: str | None = Field(default=None, description="image reference overriding the default")

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        match = _PYTHON_RE.match(value)
        if not match or int(match.group(1)) not in SUPPORTED_PYTHON_MINORS:
            raise ValueError(
                f"python {value!r} is not a supported version (3.{SUPPORTED_PYTHON_MINORS.start}"
                f" to 3.{SUPPORTED_PYTHON_MINORS.stop - 1}, written like '3.11')"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_cuda(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == "cuda" and data.get("cuda") is None:
            return {**data, "cuda": DEFAULT_CUDA}
        return data

    @model_validator(mode="after")
    def _cuda_matches_kind(self) -> Target:
        if self.kind == "cpu" and self.cuda is not None:
            raise ValueError("a cpu target takes no cuda version")
        if self.kind == "cuda" and not _CUDA_RE.match(self.cuda or ""):
            raise ValueError(f"cuda {self.cuda!r} must look like '13.0' or '12.8'")
        return self

    @property
    def label(self) -> str:
        """Short name, like `cpu-py3.11` or `cu13.0-py3.11`."""
        head = "cpu" if self.kind == "cpu" else f"cu{self.cuda}"
        return f"{head}-py{self.python}"


class IndexSettings(_Frozen):
    """Where sdists and runtime/build dependencies come from."""

    index_url: str = "https://pypi.org/simple"
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = Field(
        default=(), description="http(s) URLs, or folders the service's settings allow-list"
    )
    no_index: bool = Field(
        default=False, description="no index at all: only find-links (offline GPU nodes)"
    )

    @field_validator("index_url")
    @classmethod
    def _http_index(cls, value: str) -> str:
        return _http_url(value, "index URL")

    @field_validator("extra_index_urls")
    @classmethod
    def _http_indexes(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_http_url(v, "extra index URL") for v in values)

    @field_validator("find_links")
    @classmethod
    def _links(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if value.startswith(("http://", "https://")):
                _http_url(value, "find-links URL")
            elif not value.startswith("/") or ".." in value.split("/") or "\x00" in value:
                raise ValueError(
                    f"find-links {value!r} must be an http(s) URL or an absolute folder path"
                )
        return values


def _http_url(value: str, what: str) -> str:
    if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
        raise ValueError(f"{what} {value!r} must be an http:// or https:// URL")
    if value.split("://", 1)[1].startswith("-"):
        raise ValueError(f"{what} {value!r} has a host starting with '-'")
    return value


def _local_label(value: str | None) -> str | None:
    if value is not None and value != "auto" and not LOCAL_LABEL_RE.match(value):
        raise ValueError(
            f"local label {value!r} must be 'auto' or lowercase letters and digits, dot-separated"
        )
    return value


class EnvironmentSpec(_Frozen):
    """A named build environment, declared in the config file (`[environments.NAME]`)."""

    target: Target = Target()
    runtime: tuple[str, ...] = ()
    build_requires: tuple[str, ...] = ()
    config_settings: dict[str, str | list[str]] = Field(default_factory=dict)
    build_env: dict[str, str] = Field(default_factory=dict)
    index: IndexSettings = IndexSettings()
    local_label: str | None = None
    verify_smoke: str | None = Field(
        default=None, description="Python code verify runs on a GPU, when the build has one"
    )
    compiler_cache: bool = Field(default=True, description="builds use the compiler cache")

    _label = field_validator("local_label")(_local_label)


class RebuildOf(_Frozen):
    """The published build a rebuild repeats (`wheelwright verify --rebuild`): its environment
    and request key. The rebuild lands in a scratch environment of its own, and its bytes are
    compared with the original's (`service/provenance/rebuild.py`)."""

    environment: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    request_key: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class AppliedRecipe(_Frozen):
    """The package recipe applied to a request (`service/recipes.py`): what it added to the
    request's `build_env` and `build_requires`, and what the plan reads from it."""

    name: str = Field(description="package and version range, e.g. 'flash-attn>=2.0'")
    origin: Literal["builtin", "config"] = "builtin"
    env: dict[str, str] = Field(default_factory=dict, description="defaults it set")
    build_requires: tuple[str, ...] = Field(default=(), description="requirements it added")
    arch_env: str | None = Field(default=None, description="where the package reads its archs")
    arch_format: Literal["torch", "digits"] = "torch"
    fixed_archs: str | None = Field(default=None, description="archs it builds whatever it is told")
    job_memory_bytes: int | None = Field(default=None, gt=0)
    nvcc_threads: int | None = Field(default=None, ge=1)
    parallel_extensions: bool = False


class BuildRequest(_Frozen):
    """One build: a source, a target, and how to stage the environment around it."""

    source: Source
    environment: str | None = Field(
        default=None, description="a named environment of the config; its settings apply"
    )
    target: Target = Target()
    runtime: tuple[str, ...] = Field(default=(), description="runtime pins, e.g. torch==2.13.0")
    build_requires: tuple[str, ...] = Field(default=(), description="extra build dependencies")
    config_settings: dict[str, str | list[str]] = Field(default_factory=dict)
    build_env: dict[str, str] = Field(default_factory=dict)
    index: IndexSettings = IndexSettings()
    verify_imports: tuple[str, ...] | None = None
    verify_smoke: str | None = Field(
        default=None,
        max_length=MAX_SMOKE_CHARS,
        description="Python code that verify runs in the runtime environment when the build has"
        " a GPU (launch a kernel, compare with the CPU); a non-zero exit fails the build",
    )
    local_label: str | None = Field(
        default=None, description="stamp `+label` on the version ('auto': like cu130torch2.13)"
    )
    timeout_s: int | None = Field(
        default=None, ge=10, le=48 * 3600, description="build deadline; default: the service's"
    )
    compiler_cache: bool = Field(
        default=True,
        description="use the project's compiler cache (it changes how long, never what, is built)",
    )
    rebuild_of: RebuildOf | None = Field(
        default=None, description="repeat this published build, into a scratch environment"
    )
    recipe: AppliedRecipe | None = Field(
        default=None, description="the package recipe applied where the request was prepared"
    )

    _label = field_validator("local_label")(_local_label)

    @field_validator("environment")
    @classmethod
    def _environment_name(cls, value: str | None) -> str | None:
        if value is not None and not ENVIRONMENT_RE.match(value):
            raise ValueError(
                f"environment {value!r} is not a valid name ({ENVIRONMENT_RE.pattern})"
            )
        return value

    @field_validator("runtime", "build_requires")
    @classmethod
    def _requirements(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(_requirement(v.strip())) for v in values)

    @field_validator("build_env")
    @classmethod
    def _allowed_env(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in ALLOWED_BUILD_ENV):
                allowed = ", ".join(ALLOWED_BUILD_ENV)
                raise ValueError(f"build env {name!r} is not allowed (allowed: {allowed})")
        return dict(sorted(env.items()))

    @field_validator("config_settings")
    @classmethod
    def _sorted_settings(cls, settings: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        return dict(sorted(settings.items()))

    @field_validator("verify_imports")
    @classmethod
    def _module_names(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in names or ():
            if not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"verify import {name!r} is not a module name")
        return names


def parse_request(data: object) -> BuildRequest:
    """Validate raw data into a request, turning pydantic's report into one clear error."""
    try:
        return BuildRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidRequestError(f"invalid build request: {problems}") from None


BuildState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class StageTiming(BaseModel):
    name: str
    seconds: float | None = None
    network: bool = False
    ok: bool | None = None


class Requester(BaseModel):
    """Who or what asked for a build (the dashboard's provenance shows it). Never a secret:
    a token is named, not quoted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    via: Literal["api", "cli", "webhook", "dashboard"] = "api"
    token: str | None = Field(default=None, description="the name of the API token used")
    delivery: str | None = Field(default=None, description="the webhook delivery id")
    repository: str | None = Field(default=None, description="the webhook's repository")


class BuildRecord(BaseModel):
    """A build as the API reports it: live state in Redis, the artifact once published."""

    model_config = ConfigDict(extra="forbid")

    id: str
    state: BuildState = "queued"
    request: BuildRequest
    request_key: str
    environment: str
    image: str | None = Field(
        default=None, description="the build image's name in the key (None: an older record)"
    )
    queue: str
    project: str = ""
    created_at: float
    started_at: float | None = None
    heartbeat_at: float | None = Field(
        default=None, description="last sign of life of the worker running it"
    )
    finished_at: float | None = None
    attempts: int = 0
    stages: list[StageTiming] = Field(default_factory=list)
    error: str | None = None
    error_stage: str | None = None
    artifact: dict[str, Any] | None = None
    requested_by: Requester | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES
