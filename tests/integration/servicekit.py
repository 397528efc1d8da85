"""The service as it is deployed, on one machine: `wheelwright serve` and `wheelwright worker`
processes sharing a Redis and a store, started and stopped by the tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from enginekit import FIXTURES
from s3_server import free_port

BIN = Path(sys.executable).parent


@dataclass
class Service:
    home: Path
    redis_url: str
    build_timeout_s: int = 60
    port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "WHEELWRIGHT_HOME": str(self.home),
            "WHEELWRIGHT_BROKER_URL": self.redis_url,
            "WHEELWRIGHT_BUILD_TIMEOUT_S": str(self.build_timeout_s),
            "WHEELWRIGHT_QUEUE__SOFT_LIMIT_MARGIN_S": "1",
            "WHEELWRIGHT_QUEUE__TIME_LIMIT_MARGIN_S": "1",
            "WHEELWRIGHT_QUEUE__VISIBILITY_MARGIN_S": "1",
            **self.extra_env,
        }

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.home / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                [str(BIN / "wheelwright"), *args],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_api(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.api = self._spawn("api", "serve", "--port", str(self.port))
        self._wait(lambda: httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200, "api")

    def start_worker(self, queues: str = "cpu") -> subprocess.Popen[bytes]:
        name = f"worker{len(self.workers)}"
        log = self.home / f"{name}.log"
        worker = self._spawn(name, "worker", "--queues", queues)
        self.workers.append(worker)
        self._wait(lambda: b" ready." in log.read_bytes(), name)
        return worker

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children: a lost machine, no clean-up at all."""
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        self.workers.remove(worker)

    def stop(self) -> None:
        for process in [*self.workers, *([self.api] if self.api else [])]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
        self.workers.clear()
        self.api = None

    def _wait(self, ready: Any, what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.2)
        log = self.home / f"{what}.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        msg = f"{what} did not become ready in {timeout_s}s:\n{tail}"
        raise AssertionError(msg)

    def build(self, build_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/v1/builds/{build_id}", timeout=10)
        if response.status_code != 200:
            log = (self.home / "api.log").read_text(errors="replace")[-4000:]
            msg = f"GET build {build_id}: {response.status_code} {response.text}\n{log}"
            raise AssertionError(msg)
        answer: dict[str, Any] = response.json()
        return answer["build"]

    def wait_for(
        self, build_id: str, condition: Any, timeout_s: float = 180, what: str = "state"
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            build = self.build(build_id)
            if condition(build):
                return build
            time.sleep(0.3)
        msg = f"build {build_id} never reached the expected {what}: {self.build(build_id)}"
        raise AssertionError(msg)

    def upload(self, archive: Path, **fields: Any) -> dict[str, Any]:
        with archive.open("rb") as fh:
            response = httpx.post(
                f"{self.url}/v1/builds",
                files={"file": (archive.name, fh)},
                data={"options": json.dumps(fields)},
                timeout=30,
            )
        assert response.status_code in (200, 202), response.text
        answer: dict[str, Any] = response.json()
        return answer


def running_stage(build: dict[str, Any], stage: str) -> bool:
    return any(s["name"] == stage and s["seconds"] is None for s in build["stages"])


def sleepy_sdist(dest: Path, seconds: float, version: str) -> Path:
    folder = dest / f"sleepy-{version}"
    folder.mkdir(parents=True)
    for name in ("setup.py", "sleepy.py"):
        (folder / name).write_text((FIXTURES / "sleepy" / name).read_text())
    (folder / "sleep.txt").write_text(str(seconds))
    (folder / "version.txt").write_text(version)
    archive = dest / f"sleepy-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive
