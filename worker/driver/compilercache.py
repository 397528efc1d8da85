"""The compiler cache inside the build stage: sccache in front of every compiler, then its figures.

The worker mounts the project's cache folder (brought from the store) at a fixed path and names it
in the build request; this module makes the build's compiles go through sccache and reads
sccache's own counts when the build is done. Backends are reached through what they look up:
- wrapper scripts named like the compilers (`cc`, `c++`, `gcc`, `x86_64-linux-gnu-g++`, `nvcc`,
  ...) first on PATH: setuptools, torch's ninja files (`c++`), CMake and meson find them there;
- `PYTORCH_NVCC`: torch.utils.cpp_extension's ninja files take nvcc from it;
- a shadow CUDA_HOME whose `bin/nvcc` is the wrapper (everything else links to the real toolkit),
  for builds that run `$CUDA_HOME/bin/nvcc` themselves;
- scikit-build-core's build folder at a fixed path (`SKBUILD_BUILD_DIR`), where it would
  otherwise make a temporary one.
torch's own wrapping (it puts `sccache` in front when it finds one on PATH) is turned off
(`TORCH_NO_COMPILER_WRAPPER`), so no compile goes through sccache twice. The nvcc wrapper takes
the compiler wrappers off PATH: sccache splits nvcc into its phases and caches each itself.

Runs under the build image's Python with nothing but the standard library.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Compiler names a wrapper is made for, when the image has them.
COMPILERS = (
    "cc",
    "c++",
    "gcc",
    "g++",
    "clang",
    "clang++",
    "x86_64-linux-gnu-gcc",
    "x86_64-linux-gnu-g++",
    "aarch64-linux-gnu-gcc",
    "aarch64-linux-gnu-g++",
)
SCCACHE_CANDIDATES = ("/opt/sccache/bin/sccache", "/usr/local/bin/sccache")


@dataclass(frozen=True)
class Active:
    sccache: str
    env: Mapping[str, str]


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def find_sccache() -> str | None:
    for candidate in SCCACHE_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("sccache")


def _script(path: Path, lines: list[str]) -> None:
    path.write_text("#!/bin/sh\n" + "\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o755)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def make_wrappers(sccache: str, folder: Path, path: str, cuda_home: str | None) -> dict[str, str]:
    """Write the wrappers into `folder`; return the environment that puts them in front."""
    folder.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    for name in COMPILERS:
        real = shutil.which(name, path=path)
        if real is None:
            continue
        _script(folder / name, [f'exec {_quote(sccache)} {_quote(real)} "$@"'])
        made.append(name)
    env = {"PATH": f"{folder}{os.pathsep}{path}", "TORCH_NO_COMPILER_WRAPPER": "1"}
    nvcc = Path(cuda_home, "bin", "nvcc") if cuda_home else None
    if nvcc is not None and os.access(nvcc, os.X_OK):
        wrapper = folder / "nvcc"
        # nvcc's host compiler is the real one: sccache runs and caches nvcc's phases itself
        _script(
            wrapper,
            [
                f"PATH={_quote(path)}",
                "export PATH",
                f'exec {_quote(sccache)} {_quote(str(nvcc))} "$@"',
            ],
        )
        made.append("nvcc")
        shadow = shadow_cuda_home(Path(str(cuda_home)), folder / "cuda", wrapper)
        env |= {"PYTORCH_NVCC": str(wrapper), "CUDA_HOME": str(shadow), "CUDA_PATH": str(shadow)}
    _say(f"compiler cache: sccache in front of {', '.join(made) or 'no compiler'}")
    return env


def shadow_cuda_home(real: Path, shadow: Path, nvcc: Path) -> Path:
    """A CUDA_HOME like `real` (links to its entries) whose `bin/nvcc` is `nvcc`."""
    real = real.resolve()
    (shadow / "bin").mkdir(parents=True, exist_ok=True)
    for entry in real.iterdir():
        if entry.name != "bin":
            (shadow / entry.name).symlink_to(entry)
    for tool in (real / "bin").iterdir():
        if tool.name != "nvcc":
            (shadow / "bin" / tool.name).symlink_to(tool)
    (shadow / "bin" / "nvcc").symlink_to(nvcc)
    return shadow


def start(config: Mapping[str, Any] | None) -> Active | None:
    """Put sccache in front of the compilers (the environment of this process, which the
    backend inherits) and start its server; None when the cache is off or unusable."""
    if not config:
        return None
    sccache = find_sccache()
    if sccache is None:
        _say("compiler cache: this image has no sccache; building without it")
        return None
    env = {
        # scikit-build-core builds in a temporary folder unless told: a fixed one, for hits
        "SKBUILD_BUILD_DIR": str(Path(config["wrappers"]).parent / "skbuild"),
        "SCCACHE_DIR": str(config["dir"]),
        "SCCACHE_CACHE_SIZE": f"{int(config['max_bytes'])}",
        "SCCACHE_IDLE_TIMEOUT": "0",
        "SCCACHE_ERROR_LOG": str(Path(config["wrappers"]).parent / "sccache.log"),
    }
    os.environ.update(env)
    wrappers = make_wrappers(
        sccache, Path(config["wrappers"]), os.environ.get("PATH", ""), os.environ.get("CUDA_HOME")
    )
    before = {name: os.environ.get(name) for name in wrappers}
    os.environ.update(wrappers)
    code = subprocess.call([sccache, "--start-server"])
    if code != 0:
        _say(f"compiler cache: sccache --start-server failed (exit code {code}); not used")
        for name, value in before.items():  # the compilers as they were
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        return None
    subprocess.call([sccache, "--zero-stats"], stdout=subprocess.DEVNULL)
    return Active(sccache=sccache, env={**env, **wrappers})


def stop(active: Active | None) -> dict[str, Any] | None:
    """sccache's own counts for this build (`--show-stats --stats-format=json`); stops it."""
    if active is None:
        return None
    try:
        out = subprocess.run(
            [active.sccache, "--show-stats", "--stats-format=json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        stats = json.loads(out.stdout) if out.returncode == 0 else None
    except (ValueError, subprocess.TimeoutExpired):
        stats = None
    subprocess.call([active.sccache, "--stop-server"], stdout=subprocess.DEVNULL)
    if not isinstance(stats, dict):
        return {"error": "sccache gave no statistics"}
    return stats
