"""Rejection time and API CPU for a small project upload that unpacks to a 16 MiB
pyproject.toml: a real `wheelwright serve` (uvicorn) process, its CPU time read from
`/proc/PID/stat` before and after each request. Goal: a 4xx in under 1 s. For scale, the cost
of one `tomllib` parse of that file in this process (what the API paid, several times over,
before the file's size was checked first).

    .venv/bin/python bench/project_file_limits.py [--mib 16] [--rounds 3] [--wheelwright PATH]

`--wheelwright` runs another checkout's command (say, main's) to compare before and after;
`--timeout` bounds each request there.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from s3_server import free_port  # noqa: E402

MIB = 1024 * 1024
HEAD = b'[project]\nname = "demo"\nversion = "0.1"\nrequires-python = ">=3.10"\n'


def pyproject(mib: int) -> bytes:
    """A valid pyproject.toml of `mib` MiB: a long array of short strings (what TOML parsers
    spend the most on per byte, unlike a comment)."""
    item = b'"x",'
    count = (mib * MIB - len(HEAD) - 32) // len(item)
    return HEAD + b"keywords = [" + item * count + b'"x"]\n'


def archive(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("demo/pyproject.toml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def measure(base: str, pid: int, upload: bytes, timeout: float) -> tuple[str, float, float]:
    before = cpu_s(pid)
    started = time.perf_counter()
    try:
        answer = httpx.post(
            f"{base}/v1/projects",
            files={"file": ("demo.tar.gz", upload, "application/gzip")},
            data={"options": json.dumps({"target": "cpu"})},
            timeout=timeout,
        )
        status = f"HTTP {answer.status_code}"
    except httpx.TimeoutException:
        status = f"no answer within {timeout:.0f} s"
    seconds = time.perf_counter() - started
    return status, seconds, cpu_s(pid) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--wheelwright", default=str(Path(sys.executable).with_name("wheelwright")))
    args = parser.parse_args()
    data = pyproject(args.mib)
    upload = archive(data)
    started = time.process_time()
    tomllib.loads(data.decode())
    one_parse = time.process_time() - started
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WHEELWRIGHT_HOME": tmp}
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
                f"server: {args.wheelwright}; upload {len(upload) / 1024:.0f} KiB unpacking to a "
                f"{len(data) / MIB:.0f} MiB pyproject.toml; one tomllib parse of it here: "
                f"{one_parse:.2f} CPU-s"
            )
            walls, cpus = [], []
            for number in range(1, args.rounds + 1):
                status, seconds, cpu = measure(base, server.pid, upload, args.timeout)
                walls.append(seconds)
                cpus.append(cpu)
                print(f"  round {number}: {status} in {seconds:.3f} s, API CPU {cpu:.3f} s")
            best = min(walls)
            print(
                f"best of {args.rounds}: {best:.3f} s wall, {min(cpus):.3f} CPU-s in the API "
                f"({min(cpus) / one_parse:.2f} of one parse); goal < 1 s: "
                f"{'met' if best < 1 else 'missed'}"
            )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
