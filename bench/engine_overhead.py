"""Engine overhead against a raw staged `pip wheel --no-build-isolation`, in one run.

Both sides build the same torch C++ extension against torch 2.13.0 (CPU) in the same build image
with the same warm package cache: the raw side in one container by hand (venv, install torch,
install setuptools, `pip wheel --no-build-isolation`), the engine through all its stages (fetch,
runtime, build deps, build, verify; one container each). Prints the median of each and the ratio
(goal: at most 1.10), and the runtime stage's time with a warm cache (goal: torch under 10 s).

    .venv/bin/python bench/engine_overhead.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from enginekit import Builder, make_sdist, request_for, torch_find_links  # noqa: E402

from service.config import load_settings  # noqa: E402
from worker.executors.docker import DockerExecutor  # noqa: E402
from worker.images import ensure_image, image_tag  # noqa: E402

RAW = """set -e
uv venv -q --seed /tmp/env
uv pip install -q --python /tmp/env/bin/python --find-links /fl torch==2.13.0
uv pip install -q --python /tmp/env/bin/python setuptools wheel
mkdir -p /tmp/src && tar -xzf /sdist/{sdist} -C /tmp/src
/tmp/env/bin/python -m pip wheel -q --no-build-isolation --no-deps -w /tmp/out /tmp/src/{top}
ls /tmp/out
"""


def raw_build(client: docker.DockerClient, image: str, sdist: Path, cache: Path) -> float:
    ca = os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    script = RAW.format(sdist=sdist.name, top=sdist.name.removesuffix(".tar.gz"))
    started = time.monotonic()
    client.containers.run(
        image,
        ["bash", "-c", script],
        environment={"UV_CACHE_DIR": "/cache/uv", "UV_LINK_MODE": "copy", "SSL_CERT_FILE": "/ca"},
        volumes={
            str(sdist.parent): {"bind": "/sdist", "mode": "ro"},
            torch_find_links(): {"bind": "/fl", "mode": "ro"},
            str(cache): {"bind": "/cache", "mode": "rw"},
            ca: {"bind": "/ca", "mode": "ro"},
        },
        user="1000:1000",
        network_mode="host",
        remove=True,
    )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    client = docker.from_env()
    ensure_image(client, "cpu", "3.11")
    image = image_tag("cpu", "3.11")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)  # the raw container reads the sdist as uid 1000
        home = Path(tmp) / "home"
        settings = load_settings(home=home, sources={"find_links": [torch_find_links()]})
        builder = Builder(settings, DockerExecutor(settings))
        sdist = make_sdist("torch-ext", Path(tmp), "torchfix", "0.3.0")
        request = request_for(
            sdist, runtime=["torch==2.13.0"], index={"find_links": [torch_find_links()]}
        )
        cache = settings.cache_dir / "docker"
        print("warming the package cache (one untimed engine build) ...", flush=True)
        builder.build(request)
        engine_times, raw_times, runtime_times = [], [], []
        for round_no in range(1, args.rounds + 1):
            raw_times.append(raw_build(client, image, sdist, cache))
            started = time.monotonic()
            built = builder.build(request)
            engine_times.append(time.monotonic() - started)
            stages = {s["name"]: s["seconds"] for s in built.manifest["stages"]}
            runtime_times.append(stages["runtime"])
            print(
                f"round {round_no}: raw {raw_times[-1]:.1f}s, engine {engine_times[-1]:.1f}s "
                f"({', '.join(f'{k} {v:.1f}s' for k, v in stages.items())})",
                flush=True,
            )
    raw, engine = statistics.median(raw_times), statistics.median(engine_times)
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| raw staged pip wheel --no-build-isolation (median) | {raw:.1f} s |")
    print(f"| wheelwright engine, all stages (median) | {engine:.1f} s |")
    print(f"| overhead ratio engine / raw (goal <= 1.10) | {engine / raw:.3f} |")
    print(f"| runtime stage, torch 2.13.0, warm cache (goal < 10 s) | {min(runtime_times):.1f} s |")


if __name__ == "__main__":
    main()
