"""A real S3 API for the tests: moto's standalone server as its own process, over HTTP.

`moto_server()` starts `moto_server -H 127.0.0.1 -p <free port>`, waits until it answers, yields
its endpoint URL and terminates it afterwards. If it cannot start, it raises: tests that need S3
fail, they never skip.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT_S = 30.0


class S3ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command(port: int) -> list[str]:
    beside = Path(sys.executable).parent / "moto_server"
    binary = str(beside) if beside.exists() else shutil.which("moto_server")
    if binary is None:
        raise S3ServerError("moto_server is not installed (pip install 'moto[server]')")
    return [binary, "-H", "127.0.0.1", "-p", str(port)]


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/moto-api/")
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Run a moto S3 server; yields `http://127.0.0.1:<port>`."""
    port = free_port()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(_command(port), stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not _answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    log = output.read().decode(errors="replace")[-2000:]
                    raise S3ServerError(f"moto_server did not start on port {port}:\n{log}")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
