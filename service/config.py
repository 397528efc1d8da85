"""Settings: `WHEELWRIGHT_*` environment variables over a TOML file over embedded defaults.

The embedded defaults run everything on one machine: the docker executor, a local wheel store
under `~/.local/share/wheelwright`, no Redis, no S3. `WHEELWRIGHT_CONFIG=path.toml` adds a file.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from service.errors import ConfigError
from service.models import EnvironmentSpec, IndexSettings
from service.recipes import Recipe

#: the shortest API token accepted: a token is a secret, not a password to remember
MIN_TOKEN_CHARS = 24


def _default_home() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "wheelwright"


def _default_ca_bundle() -> Path | None:
    for var in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    return None


class DockerSettings(BaseModel):
    """How the docker executor shapes each build container."""

    model_config = ConfigDict(extra="forbid")

    gpus: Literal["auto", "none", "all"] = "auto"
    cpus: float | None = Field(default=None, description="CPU limit; default: all host cores")
    memory: str = "16g"
    pids_limit: int = 4096
    user: str | None = Field(default=None, description="uid:gid; default 1000:1000")
    offline_base: bool | None = Field(
        default=None, description="build images from a debootstrap base (None: when no registry)"
    )
    cpu_base: str | None = None
    cuda_base: str | None = None


class HostSettings(BaseModel):
    """How the host executor (no Docker: an HPC or GPU node) stages a build."""

    model_config = ConfigDict(extra="forbid")

    inherit_packages: bool = Field(
        default=False,
        description="build against the packages of the interpreter running the worker (its "
        "torch, setuptools, ninja) instead of installing them: for nodes with no network",
    )


class SourceSettings(BaseModel):
    """What a request may point the service at on this host (the operator decides)."""

    model_config = ConfigDict(extra="forbid")

    find_links: tuple[Path, ...] = Field(
        default=(), description="local wheel folders a request's find-links may name (and below)"
    )
    allow_file_git: bool = Field(default=False, description="accept file:// git URLs")
    private_hosts: tuple[str, ...] = Field(
        default=(),
        description="hosts on this host's own networks (loopback, private ranges) that a "
        "build's network may reach all the same: a team's own package index",
    )


class LimitSettings(BaseModel):
    """Bounds on what one request or one build may make the service read or keep."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(
        default=2 * 1024**2, ge=1024, description="JSON request and webhook bodies"
    )
    max_upload_bytes: int = Field(
        default=512 * 1024**2, ge=1024, description="a multipart upload (the sdist), whole"
    )
    max_log_line_chars: int = Field(default=16_384, ge=80, description="longer lines are cut")
    max_log_bytes: int = Field(default=64 * 1024**2, ge=4096, description="stored log cap")
    max_metadata_bytes: int = Field(default=1024**2, ge=1024, description="a wheel's METADATA")
    max_wheel_unpacked_bytes: int = Field(
        default=8 * 1024**3, ge=1024, description="a wheel's total unpacked size"
    )
    max_project_builds: int = Field(
        default=4, ge=1, description="project builds one API process runs at once (uv, waiting)"
    )
    project_build_share: int | None = Field(
        default=None,
        ge=1,
        description="of those, what one requester (a token, a webhook's repository) may run "
        "at once; default: half of max_project_builds, rounded up",
    )
    max_waiting_project_builds: int = Field(
        default=8, ge=0, description="one requester's project builds waiting for a slot"
    )
    max_project_packages: int = Field(
        default=200, ge=1, description="packages one project build may build"
    )
    max_builds_per_requester: int = Field(
        default=256, ge=1, description="builds one requester may have queued or running at once"
    )
    max_pyproject_bytes: int = Field(
        default=1024**2,
        ge=1024,
        description="a project's pyproject.toml (checked before it is read)",
    )
    max_lock_bytes: int = Field(
        default=8 * 1024**2, ge=1024, description="a project's uv.lock or pylock.toml"
    )
    max_requirements_bytes: int = Field(
        default=1024**2, ge=1024, description="a project's requirements file"
    )


class CompilerCacheSettings(BaseModel):
    """sccache's cache of each project, brought from the store before a build and saved after."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="off: no build uses a compiler cache")
    max_bytes: int = Field(
        default=2 * 1024**3, ge=16 * 1024**2, description="one project's cache; LRU beyond"
    )
    max_members: int = Field(
        default=100_000, ge=1_000, description="one cache's files and folders; LRU beyond"
    )


class StoreSettings(BaseModel):
    """Where wheels, metadata, manifests and logs last: a local directory or an S3 bucket."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "s3"] = "local"
    path: Path | None = Field(default=None, description="local store root; default HOME/store")
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    presign: bool = Field(default=False, description="redirect file downloads to presigned URLs")
    presign_expiry_s: int = 300


class SigningSettings(BaseModel):
    """The operator's Ed25519 key that signs each wheel's provenance (service/provenance)."""

    model_config = ConfigDict(extra="forbid")

    key_file: Path | None = Field(default=None, description="private key, PEM (PKCS#8)")
    key: SecretStr | None = Field(default=None, description="the private key's PEM, as a secret")
    trusted_keys: tuple[Path, ...] = Field(
        default=(), description="earlier public keys (PEM) still accepted: a rotation"
    )


class DatabaseSettings(BaseModel):
    """The SQL database of the index catalog (the store stays the source of truth)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL (postgresql+psycopg://user:pass@host/db when deployed); "
        "default: a SQLite file HOME/catalog.sqlite3",
    )


class ApiToken(BaseModel):
    """One API token: who it is for, the secret, and what it may do."""

    model_config = ConfigDict(extra="forbid")

    name: str
    token: SecretStr
    scopes: tuple[Literal["read", "build", "admin"], ...] = ("read",)


class AuthSettings(BaseModel):
    """With no tokens configured the service is open (the embedded default)."""

    model_config = ConfigDict(extra="forbid")

    tokens: tuple[ApiToken, ...] = ()
    anonymous_index: bool = Field(default=True, description="index readable without a token")
    max_failures: int = Field(
        default=10,
        ge=1,
        description="wrong tokens (and logins) one client address may send in "
        "failure_window_s; past that it gets 429 for the rest of the window",
    )
    failure_window_s: int = Field(default=60, ge=1, description="see max_failures")

    @field_validator("tokens")
    @classmethod
    def _long_enough(cls, tokens: tuple[ApiToken, ...]) -> tuple[ApiToken, ...]:
        """A short token is guessed; refused here, naming the token by its name only."""
        for entry in tokens:
            if len(entry.token.get_secret_value()) < MIN_TOKEN_CHARS:
                raise ValueError(
                    f"token {entry.name!r} is shorter than {MIN_TOKEN_CHARS} characters"
                    " (make one with `openssl rand -hex 24`)"
                )
        return tokens


class QueueSettings(BaseModel):
    """Celery on Redis, shaped for builds that run for hours."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, description="deliveries before a build fails")
    soft_limit_margin_s: int = Field(default=60, ge=1, description="soft limit past the deadline")
    visibility_margin_s: int = Field(default=600, ge=1, description="added to the hard limit")
    time_limit_margin_s: int = Field(default=300, ge=1, description="hard limit past soft")


class WebhookSettings(BaseModel):
    """Shared secrets of the forges' webhooks; a forge without one is refused."""

    model_config = ConfigDict(extra="forbid")

    github_secret: SecretStr | None = None
    gitlab_token: SecretStr | None = None
    replay_window_s: int = Field(default=7 * 24 * 3600, ge=60, description="delivery ids kept")


class ProjectConfig(BaseModel):
    """A repository whose pushes and tags build wheels for some environments."""

    model_config = ConfigDict(extra="forbid")

    repository: str = Field(description="as the forge names it: 'org/name' or 'group/sub/name'")
    url: str | None = Field(default=None, description="clone URL; default: the webhook's")
    subdirectory: str | None = None
    branches: tuple[str, ...] = Field(default=("main",), description="glob patterns")
    tags: tuple[str, ...] = Field(default=("*",), description="glob patterns")
    environments: tuple[str, ...] = Field(min_length=1)
    build: Literal["package", "project"] = Field(
        default="package",
        description="package: build the repository's own wheel on every push; project: build "
        "what its pyproject.toml and uv.lock are missing, when a push changes either",
    )


class Settings(BaseSettings):
    """All settings. Nested values use `__`: `WHEELWRIGHT_DOCKER__GPUS=none`."""

    model_config = SettingsConfigDict(
        env_prefix="WHEELWRIGHT_", env_nested_delimiter="__", extra="forbid"
    )

    home: Path = Field(default_factory=_default_home)
    executor: Literal["docker", "host"] = "docker"
    docker: DockerSettings = DockerSettings()
    host: HostSettings = HostSettings()
    index: IndexSettings = IndexSettings()
    store: StoreSettings = StoreSettings()
    database: DatabaseSettings = DatabaseSettings()
    broker_url: str | None = Field(
        default=None, description="Redis URL; without it `serve` runs builds in-process"
    )
    public_url: str | None = Field(
        default=None,
        description="where users and build containers reach this service (https://wheels."
        "example.com): the index URL in project builds and their uv configuration, and the "
        "links the API answers with; default: the URL each request came to (its Host header)",
    )
    build_timeout_s: int = Field(default=3600, ge=10, description="default build deadline")
    queue: QueueSettings = QueueSettings()
    environments: dict[str, EnvironmentSpec] = Field(
        default_factory=dict, description="named build environments ([environments.NAME])"
    )
    recipes: tuple[Recipe, ...] = Field(
        default=(), description="package recipes ([[recipes]]), tried before the project's own"
    )
    auth: AuthSettings = AuthSettings()
    webhooks: WebhookSettings = WebhookSettings()
    projects: tuple[ProjectConfig, ...] = ()
    sources: SourceSettings = SourceSettings()
    limits: LimitSettings = LimitSettings()
    compiler_cache: CompilerCacheSettings = CompilerCacheSettings()
    signing: SigningSettings = SigningSettings()
    ca_bundle: Path | None = Field(default_factory=_default_ca_bundle)
    abi_pins: tuple[str, ...] = ("torch",)
    keep_workspace: bool = False
    max_archive_bytes: int = Field(default=4 * 1024**3, description="unpacked size limit")
    max_archive_members: int = Field(default=100_000, description="archive member count limit")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"public_url {value!r} must be an http:// or https:// URL")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"public_url {value!r} takes no query, fragment or credentials")
        return value.strip().rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("WHEELWRIGHT_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def soft_time_limit_s(self) -> int:
        """Celery's soft limit: the longest deadline a build may ask for, plus a margin."""
        return self.build_timeout_s + self.queue.soft_limit_margin_s

    @property
    def hard_time_limit_s(self) -> int:
        return self.soft_time_limit_s + self.queue.time_limit_margin_s

    @property
    def visibility_timeout_s(self) -> int:
        """Redis redelivers an unacknowledged build only after this: above the hard limit."""
        return self.hard_time_limit_s + self.queue.visibility_margin_s

    @cached_property
    def store_dir(self) -> Path:
        return self.store.path or self.home / "store"

    @property
    def database_url(self) -> str:
        url = self.database.url
        return url.get_secret_value() if url else f"sqlite:///{self.home / 'catalog.sqlite3'}"

    @cached_property
    def cache_dir(self) -> Path:
        """Package cache shared by builds (uv's cache): makes the runtime stage fast."""
        return self.home / "cache"

    @cached_property
    def work_dir(self) -> Path:
        """Per-build workspaces, removed after each build unless `keep_workspace`."""
        return self.home / "work"


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a bad value into a `ConfigError` that names it."""
    config_file = os.environ.get("WHEELWRIGHT_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"WHEELWRIGHT_CONFIG={config_file} does not exist")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
