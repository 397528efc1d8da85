"""Every error Wheelwright raises on purpose.

Each error knows three things about itself: the HTTP status the API answers with, whether a Celery
task may retry it (transient failures only), and the exit code of the `wheelwright` command. Callers
never see a botocore, docker or subprocess error: backends translate them into one of these.
"""

from __future__ import annotations

from typing import ClassVar


class WheelwrightError(Exception):
    """Base class: a failure with a clear message for the person who asked."""

    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        #: The build stage that raised it, when it came from a build (set by the engine).
        self.stage: str | None = None

    def __str__(self) -> str:
        return self.message


class InvalidRequestError(WheelwrightError):
    """The request itself is wrong: a bad spec, target, Python version or setting."""

    http_status = 422
    exit_code = 2


class ConfigError(WheelwrightError):
    """The service configuration is wrong or incomplete."""

    exit_code = 3


class ImageError(WheelwrightError):
    """A build image cannot be found or built."""

    exit_code = 4


class ExecutorError(WheelwrightError):
    """The executor itself broke (engine unreachable, container could not start)."""

    http_status = 503
    retryable = True
    exit_code = 5


class BuildFailedError(WheelwrightError):
    """A stage of the build failed; names the stage and keeps the tail of its log.

    `kind` is why, as the build driver named it (`worker/driver/contract.py`'s `ErrorKind`:
    `command`, `backend`, `verify`, ...), or the worker's own (`no_result`, `bad_result`,
    `limit`, `deadline`); the kinds with a class of their own are mapped in
    `worker/executors/base.py`, as pyproject-hooks maps its result flags to exceptions.
    """

    http_status = 422
    exit_code = 10
    default_kind: ClassVar[str] = "stage"

    def __init__(self, stage: str, cause: str, log_tail: str = "", kind: str | None = None) -> None:
        super().__init__(f"stage {stage!r} failed: {cause}")
        self.stage: str | None = stage
        self.cause = cause
        self.log_tail = log_tail
        self.kind = kind or self.default_kind


class BackendUnavailableError(BuildFailedError):
    """The build backend the source names cannot be imported (pyproject-hooks'
    `BackendUnavailable`): a wrong `build-backend`, or its package missing from `requires`."""

    exit_code = 16
    default_kind = "backend_unavailable"


class HookMissingError(BuildFailedError):
    """The build backend lacks a hook the build needs (pyproject-hooks' `HookMissing`)."""

    exit_code = 17
    default_kind = "hook_missing"


class VerifyFailedError(BuildFailedError):
    """A wheel was built but failed verify: its tags, its import, its undefined symbols, its
    CUDA architectures, or the smoke test on the GPU (`kind` says which)."""

    exit_code = 18
    default_kind = "verify"


class DeadlineExceededError(BuildFailedError):
    """A stage outlived its deadline; its container was killed."""

    exit_code = 11
    default_kind = "deadline"


class BuildCancelledError(WheelwrightError):
    """Somebody cancelled the build while it ran."""

    http_status = 409
    exit_code = 12


class UnsafeArchiveError(WheelwrightError):
    """An uploaded or fetched archive tried to escape its directory or is too large."""

    http_status = 422
    exit_code = 13


class SourceNotFoundError(WheelwrightError):
    """The requested project, version or commit does not exist where we looked."""

    http_status = 404
    exit_code = 14


class FetchError(WheelwrightError):
    """The source could not be downloaded (network trouble): worth another try."""

    http_status = 502
    retryable = True
    exit_code = 15


class SourceChangedError(WheelwrightError):
    """The fetched source is not the one the request was keyed by (it changed after submit)."""

    http_status = 409
    exit_code = 19


class StoreError(WheelwrightError):
    """The wheel store failed in a way that may pass (network, throttling)."""

    http_status = 503
    retryable = True
    exit_code = 20


class CatalogError(WheelwrightError):
    """The catalog database does not answer (or is not migrated); the store still holds all."""

    http_status = 503
    retryable = True
    exit_code = 31


class ObjectNotFoundError(StoreError):
    """No object under that key."""

    http_status = 404
    retryable = False


class ObjectExistsError(StoreError):
    """A conditional write found the key already taken."""

    http_status = 409
    retryable = False


class InvalidArtifactError(WheelwrightError):
    """A wheel that is corrupt, truncated or does not match its own metadata."""

    http_status = 422
    exit_code = 21


class UnknownEnvironmentError(WheelwrightError):
    """No build environment of that name."""

    http_status = 404
    exit_code = 22


class UnknownProjectError(WheelwrightError):
    """A webhook from a repository no project is configured for."""

    http_status = 404
    exit_code = 28


class BuildNotFoundError(WheelwrightError):
    """No build with that id."""

    http_status = 404
    exit_code = 23


class AuthError(WheelwrightError):
    """No token, or a wrong one."""

    http_status = 401
    exit_code = 24


class ForbiddenError(WheelwrightError):
    """A valid token without the scope this needs."""

    http_status = 403
    exit_code = 25


class JobStateError(WheelwrightError):
    """The build is in a state that does not allow this (cancel a finished build, say)."""

    http_status = 409
    exit_code = 26


class WaitTimeoutError(WheelwrightError):
    """`submit --wait` gave up: the build outlasted its deadline plus a margin."""

    http_status = 504
    exit_code = 29


class BusyError(WheelwrightError):
    """The service already runs as much of this kind of work as it may (or as much as one
    caller's share of it); try again later. The API answers 429 with `Retry-After`."""

    http_status = 429
    retryable = True
    exit_code = 30

    def __init__(self, message: str, retry_after_s: int = 30) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueUnavailableError(WheelwrightError):
    """Redis (the broker and job state) does not answer."""

    http_status = 503
    retryable = True
    exit_code = 27


class ProvenanceError(WheelwrightError):
    """A wheel's provenance cannot be made or does not prove what it claims (`verify`)."""

    http_status = 422
    exit_code = 40
