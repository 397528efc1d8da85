"""The build stage's additions to the backend's environment (worker/driver/backend_env.py):
`build_ext --parallel` from DIST_EXTRA_CONFIG, through the real setuptools, and the log line of
a lookup the build makes with the network off (that it fails at once is shown in a container
without network: tests/integration/test_cuda_builds.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.driver import backend_env

SETUP = """
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class Record(build_ext):
    def run(self):
        print("parallel =", self.parallel)


setup(
    name="pair",
    version="0",
    ext_modules=[Extension("a", ["a.c"]), Extension("b", ["b.c"])],
    cmdclass={"build_ext": Record},
)
"""


def _run(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def test_dist_extra_config_makes_build_ext_parallel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    (tmp_path / "setup.py").write_text(SETUP, encoding="utf-8")
    assert backend_env.parallel_extensions(None) == {}
    assert backend_env.parallel_extensions(1) == {}
    env = backend_env.parallel_extensions(6)
    assert Path(env["DIST_EXTRA_CONFIG"]).read_text() == "[build_ext]\nparallel = 6\n"
    out = _run(tmp_path, env, "setup.py", "-q", "build_ext")
    assert "parallel = 6" in out.stdout
    plain = _run(tmp_path, {}, "setup.py", "-q", "build_ext")
    assert "parallel = None" in plain.stdout or "parallel = 0" in plain.stdout


def test_a_lookup_is_named_in_the_log_and_fails_as_it_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    env = backend_env.backend_hooks()
    # a sitecustomize of the venv's own still runs
    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text("print('own sitecustomize ran')\n", encoding="utf-8")
    env["PYTHONPATH"] += os.pathsep + str(own)
    # the event socket.getaddrinfo raises, raised by hand: no lookup leaves this machine
    code = (
        "import sys\n"
        "for host in ('localhost', '127.0.0.1', 'prebuilt.invalid', 'prebuilt.invalid'):\n"
        "    sys.audit('socket.getaddrinfo', host, 443, 0, 0, 0)\n"
    )
    out = _run(tmp_path, env, "-c", code)
    assert "own sitecustomize ran" in out.stdout
    named = [line for line in out.stderr.splitlines() if line.startswith("==> network:")]
    assert named == [
        "==> network: the build looks up prebuilt.invalid (port 443), but the build stage runs"
        " with the network off: the attempt fails at once, and a backend that falls back (from"
        " downloading a prebuilt binary, say) compiles instead"
    ]


def test_each_extension_gets_its_own_ninja_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook wraps torch.utils.cpp_extension's ninja writer (here a stand-in module of that
    name that records where it was asked to write): extensions side by side get a folder each,
    the same in every build."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    fake = tmp_path / "fake" / "torch" / "utils"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "cpp_extension.py").write_text(
        "def _write_ninja_file_and_compile_objects(sources, objects, build_directory):\n"
        "    print('ninja in', build_directory)\n",
        encoding="utf-8",
    )
    env = backend_env.backend_hooks()
    env["PYTHONPATH"] += os.pathsep + str(tmp_path / "fake")
    code = (
        "import torch.utils.cpp_extension as c\n"
        "for objects in (['/b/a.o'], ['/b/b.o', '/b/c.o'], ['/b/a.o']):\n"
        "    c._write_ninja_file_and_compile_objects(\n"
        "        sources=[], objects=objects, build_directory='/b')\n"
    )
    plain = _run(tmp_path, env, "-c", code).stdout.split()
    assert plain.count("/b") == 3  # not asked for: unchanged
    monkeypatch.setattr(backend_env.shutil, "which", lambda _name: "/usr/bin/ninja")
    env |= backend_env.parallel_extensions(2)
    folders = [line for line in _run(tmp_path, env, "-c", code).stdout.splitlines()]
    assert len(set(folders)) == 2 and folders[0] == folders[2]
    assert all(line.startswith("ninja in /b/ninja-") for line in folders)
