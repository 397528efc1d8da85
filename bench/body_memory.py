"""Peak memory of the API while it receives a request body twice the limit, without and with a
token: a real `wheelwright serve` (uvicorn) process, its peak RSS reset before each request
(`/proc/PID/clear_refs`) and read after it (`VmHWM`). Goal: no growth beyond the limit.

    .venv/bin/python bench/body_memory.py [--limit-mib 16] [--wheelwright PATH]

`--wheelwright` runs another checkout's command (say, main's) to compare before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from s3_server import free_port  # noqa: E402

TOKEN = "bench-token-0123456789"  # noqa: S105  (a throwaway token of this bench)
MIB = 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def body(size: int) -> Iterator[bytes]:
    """A JSON-looking body sent in chunks (no Content-Length: the server must count)."""
    yield b'{"source": {"kind": "requirement", "requirement": "six==1.16.0"}, "pad": "'
    sent, chunk = 0, b"x" * MIB
    while sent < size:
        yield chunk
        sent += len(chunk)
    yield b'"}'


def measure(url: str, pid: int, size: int, token: bool) -> tuple[int, int, float]:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    before = status_kib(pid, "VmRSS")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {TOKEN}"
    started = time.perf_counter()
    try:
        answer = httpx.post(url, content=body(size), headers=headers, timeout=120)
        status = answer.status_code
    except httpx.HTTPError:
        status = 0  # the server closed the connection while the body was still coming
    seconds = time.perf_counter() - started
    time.sleep(0.5)
    peak = status_kib(pid, "VmHWM")
    return status, (peak - before) * 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-mib", type=int, default=16)
    parser.add_argument("--wheelwright", default=str(Path(sys.executable).with_name("wheelwright")))
    args = parser.parse_args()
    limit = args.limit_mib * MIB
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "WHEELWRIGHT_HOME": tmp,
            "WHEELWRIGHT_AUTH__TOKENS": json.dumps(
                [{"name": "ci", "token": TOKEN, "scopes": ["build"]}]
            ),
            "WHEELWRIGHT_LIMITS__MAX_BODY_BYTES": str(limit),
        }
        env.pop("WHEELWRIGHT_BROKER_URL", None)
        server = subprocess.Popen(
            [args.wheelwright, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            print(
                f"server: {args.wheelwright}; body limit {args.limit_mib} MiB;"
                f" body sent {2 * args.limit_mib} MiB, chunked"
            )
            for token in (False, True):
                status, growth, seconds = measure(f"{base}/v1/builds", server.pid, 2 * limit, token)
                print(
                    f"  {'with' if token else 'without'} a token: HTTP {status or 'closed'},"
                    f" peak RSS growth {growth / MIB:.1f} MiB, {seconds:.2f} s"
                )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
