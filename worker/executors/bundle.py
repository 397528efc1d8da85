"""The driver bundle: the driver's files plus the pure-Python libraries it needs.

Build images carry only a Python; the bundle is mounted read-only beside the build, so the driver
uses the same pyproject-hooks and packaging as the worker, whatever the image's Python has.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import packaging
import pyproject_hooks

import worker.driver

DRIVER_FILES = (
    "run.py",
    "steps.py",
    "installs.py",
    "contract.py",
    "audit.py",
    "compilercache.py",
    "egress.py",
    "toolchain.py",
    "backend_env.py",
)
VENDORED = (pyproject_hooks, packaging)


def driver_bundle(root: Path) -> Path:
    """A folder under `root` holding the bundle, named by its content; made once."""
    driver_dir = Path(worker.driver.__file__).parent
    sources = [driver_dir / name for name in DRIVER_FILES]
    vendored = [Path(module.__file__ or "").parent for module in VENDORED]
    digest = hashlib.sha256()
    for path in sources + sorted(p for d in vendored for p in d.rglob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    bundle = root / f"driver-{digest.hexdigest()[:16]}"
    if bundle.is_dir():
        return bundle
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".driver-"))
    for path in sources:
        shutil.copy2(path, staging / path.name)
    for package in vendored:
        shutil.copytree(
            package, staging / "vendor" / package.name, ignore=shutil.ignore_patterns("__pycache__")
        )
    staging.chmod(0o755)
    try:
        staging.rename(bundle)
    except OSError:  # another process made the same bundle first
        shutil.rmtree(staging, ignore_errors=True)
    return bundle
