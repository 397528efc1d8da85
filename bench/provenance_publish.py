"""Publish time with the signed provenance and the SBOM against without, in one run.

One real build of a small C extension (`modern-ext`, the docker executor) gives the wheel and
the manifest; then the same publish runs `--rounds` times each way into fresh local stores:
with the SBOM written into the wheel and the provenance signed (Ed25519) and stored, and with
both steps taken out. Prints the medians, their ratio, and the added time as a share of the
build itself (goal: under 5% of a small build).

    .venv/bin/python bench/provenance_publish.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT))

from enginekit import Builder, make_sdist, request_for  # noqa: E402

from service.config import SigningSettings, load_settings  # noqa: E402
from service.provenance.attach import Signing  # noqa: E402
from service.store import LocalStore  # noqa: E402
from tests.provenance_kit import make_key  # noqa: E402
from worker.executors.docker import DockerExecutor  # noqa: E402

# the module (the package's `publish` name is the function)
publishing = importlib.import_module("service.artifacts.publish")
EMBED, ATTACH = publishing.embed_sbom, publishing.attach_provenance


def _without() -> None:
    publishing.embed_sbom = lambda wheel, *_args, **_kw: (wheel, None)  # type: ignore[assignment,return-value]
    publishing.attach_provenance = lambda *_args, **_kw: {}  # type: ignore[assignment]


def _with() -> None:
    publishing.embed_sbom, publishing.attach_provenance = EMBED, ATTACH


def _publish(root: Path, n: int, built: Any, signing: Signing) -> float:
    store = LocalStore(root / f"store-{n}")
    started = time.perf_counter()
    publishing.publish(
        store,
        environment=built.environment,
        request_key=built.request_key,
        wheel=built.wheel,
        manifest=built.manifest,
        source_date_epoch=built.source_date_epoch,
        signing=signing,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory(prefix="wheelwright-bench-") as tmp:
        root = Path(tmp)
        private, _ = make_key(root / "keys", "operator")
        settings = load_settings(
            home=root / "home", executor="docker", signing=SigningSettings(key_file=private)
        )
        sdist = make_sdist("modern-ext", root, "modern_ext", "2.0.0")
        request = request_for(sdist, compiler_cache=False)
        started = time.perf_counter()
        built = Builder(settings, DockerExecutor(settings)).build(request)  # the wheel kept
        build_s = time.perf_counter() - started
        signing = Signing.of(settings)
        times: dict[str, list[float]] = {"with": [], "without": []}
        for n in range(rounds):  # interleaved, so drift touches both sides alike
            _without()
            times["without"].append(_publish(root / "without", n, built, signing))
            _with()
            times["with"].append(_publish(root / "with", n, built, signing))
    with_s, without_s = statistics.median(times["with"]), statistics.median(times["without"])
    print(f"small build (modern-ext, engine, no compiler cache): {build_s:.2f} s")
    print(f"publish without provenance and SBOM: {without_s * 1000:.1f} ms (median of {rounds})")
    print(f"publish with signed provenance and SBOM: {with_s * 1000:.1f} ms")
    print(f"ratio with/without: {with_s / without_s:.2f}")
    share = (with_s - without_s) / build_s
    print(f"added time / build time: {share:.2%} (goal: under 5%)")


if __name__ == "__main__":
    main()
