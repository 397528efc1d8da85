"""A small client of the build API: what `wheelwright submit` (and so a CI job) uses."""

from __future__ import annotations

import json
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from service.errors import (
    AuthError,
    BuildNotFoundError,
    BusyError,
    ForbiddenError,
    InvalidRequestError,
    QueueUnavailableError,
    WaitTimeoutError,
    WheelwrightError,
)

#: The CLI's User-Agent product: the service records builds it asked for as "via cli".
CLI_AGENT = "wheelwright-cli"

_BY_STATUS: dict[int, type[WheelwrightError]] = {
    401: AuthError,
    403: ForbiddenError,
    404: BuildNotFoundError,
    422: InvalidRequestError,
    429: BusyError,
}


class Client:
    def __init__(self, server: str, token: str | None = None, timeout_s: float = 60.0) -> None:
        headers = {"User-Agent": f"{CLI_AGENT}/0.1.0"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.is_success:
            return response.json()
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        error = _BY_STATUS.get(response.status_code, QueueUnavailableError)
        raise error(f"{response.status_code} from the server: {detail}")

    def submit(self, fields: dict[str, Any], archive: Path | None = None) -> Any:
        """POST a request; an archive or folder is uploaded (a folder packed as .tar.gz)."""
        try:
            if archive is None:
                return self._check(self.http.post("/v1/builds", json=fields))
            with _packed(archive) as path, path.open("rb") as fh:
                files = {"file": (path.name, fh, "application/octet-stream")}
                data = {"options": json.dumps(fields)}
                return self._check(self.http.post("/v1/builds", files=files, data=data))
        except httpx.TransportError as exc:
            raise QueueUnavailableError(f"cannot reach {self.http.base_url}: {exc}") from None

    def submit_project(self, fields: dict[str, Any], folder: Path | None = None) -> Any:
        """POST a project build: `folder` (or an archive) uploaded, else `fields` name git."""
        try:
            if folder is None:
                return self._check(self.http.post("/v1/projects", json=fields))
            with _packed(folder) as path, path.open("rb") as fh:
                files = {"file": (path.name, fh, "application/octet-stream")}
                data = {"options": json.dumps(fields)}
                return self._check(self.http.post("/v1/projects", files=files, data=data))
        except httpx.TransportError as exc:
            raise QueueUnavailableError(f"cannot reach {self.http.base_url}: {exc}") from None

    def get_project(self, project_build_id: str) -> Any:
        try:
            return self._check(self.http.get(f"/v1/projects/{project_build_id}"))
        except httpx.TransportError as exc:
            raise QueueUnavailableError(f"cannot reach {self.http.base_url}: {exc}") from None

    def get(self, build_id: str) -> Any:
        return self._check(self.http.get(f"/v1/builds/{build_id}"))

    def rebuilds(self, environment: str, request_key: str) -> Any:
        """The recorded rebuilds of a published build (`verify --rebuild`)."""
        return self._check(self.http.get(f"/v1/provenance/{environment}/{request_key}/rebuilds"))

    def cancel(self, build_id: str) -> Any:
        return self._check(self.http.post(f"/v1/builds/{build_id}/cancel"))

    def follow_log(self, build_id: str, deadline: float | None = None) -> Iterator[str]:
        """The log's lines as they come, until the build ends or `deadline` (a
        `time.monotonic()` moment) passes; then `WaitTimeoutError`."""
        url = f"/v1/builds/{build_id}/log"
        remaining = None if deadline is None else max(1.0, deadline - time.monotonic())
        timeout = httpx.Timeout(30.0, read=remaining)
        try:
            with self.http.stream("GET", url, params={"follow": "true"}, timeout=timeout) as answer:
                if not answer.is_success:
                    answer.read()
                    self._check(answer)
                for line in answer.iter_lines():
                    yield line
                    if deadline is not None and time.monotonic() > deadline:
                        raise WaitTimeoutError(f"build {build_id} outlasted the wait")
        except httpx.ReadTimeout:
            raise WaitTimeoutError(f"build {build_id} outlasted the wait") from None


class _packed:
    """A folder as a temporary `<name>.tar.gz`; an archive as itself."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path:
        if not self.path.is_dir():
            return self.path
        self.tmp = tempfile.TemporaryDirectory()
        archive = Path(self.tmp.name) / f"{self.path.resolve().name}.tar.gz"
        skip = {".git", ".venv", "__pycache__", "build", "dist"}
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(
                self.path,
                arcname=self.path.resolve().name,
                filter=lambda info: None if set(Path(info.name).parts) & skip else info,
            )
        return archive

    def __exit__(self, *_exc: object) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()
