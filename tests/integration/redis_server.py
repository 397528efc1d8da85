"""A real Redis for the tests: Debian's redis-server as its own process, on a free port.

It writes an append-only file (fsync always) so a restart keeps queued builds, as a deployed
Redis should. If redis-server is missing the fixture fails (scripts/host-services.sh installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis


@dataclass
class RedisServer:
    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            msg = "redis-server is not installed: run scripts/host-services.sh"
            raise RuntimeError(msg)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
            else:
                return
        msg = f"redis-server did not answer on port {self.port}"
        raise RuntimeError(msg)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
