"""The versions of the compilers and build tools the build stage finds (the provenance's
toolchain): gcc, g++, nvcc, sccache, cmake, ninja; a tool that is not there is left out.

Runs under the build image's Python with nothing but the standard library.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

#: tool -> (the arguments that print its version, the pattern of the version in that output)
PROBES = {
    "gcc": (["-dumpfullversion", "-dumpversion"], r"^(\d[\w.]*)"),
    "g++": (["-dumpfullversion", "-dumpversion"], r"^(\d[\w.]*)"),
    "nvcc": (["--version"], r"release [\d.]+, V(\d[\w.]*)"),
    "sccache": (["--version"], r"sccache (\d[\w.]*)"),
    "cmake": (["--version"], r"cmake version (\d[\w.]*)"),
    "ninja": (["--version"], r"^(\d[\w.]*)"),
}


def versions() -> dict[str, str]:
    found = {}
    for tool, (args, pattern) in PROBES.items():
        path = _find(tool)
        if path is None:
            continue
        try:
            done = subprocess.run(
                [path, *args], capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.SubprocessError):
            continue
        match = re.search(pattern, done.stdout + done.stderr, re.MULTILINE)
        if done.returncode == 0 and match:
            found[tool] = match.group(1)
    return found


def _find(tool: str) -> str | None:
    path = shutil.which(tool)
    if path is None and tool == "nvcc":
        home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
        candidate = os.path.join(home, "bin", "nvcc")
        path = candidate if os.access(candidate, os.X_OK) else None
    return path
