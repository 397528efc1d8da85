"""The stages the driver knows, each a function from a JSON request to JSON data.

runtime          make the venv from this interpreter and install the runtime pins into it
                 (wheels only, and no interpreter of the venv runs: the shared cache is written)
build_deps       install build-system.requires (and extra build deps)
requires         ask the backend (with the runtime present) what else it needs: network off
requires_install install what the backend asked for
build            `build_wheel` through pyproject-hooks, no isolation
verify     install the wheel with --no-deps into the runtime snapshot, check tags, import it
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename
from pyproject_hooks import BackendUnavailable, BuildBackendHookCaller, HookMissing

try:
    import tomllib
except ImportError:  # Python < 3.11 in the build image: pip carries a copy of tomli
    from pip._vendor import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

if TYPE_CHECKING or __package__:
    from worker.driver import compilercache
else:  # the flat bundle in the build container
    import compilercache

DEFAULT_BUILD_SYSTEM = {
    "requires": ["setuptools>=40.8.0"],
    "build-backend": "setuptools.build_meta:__legacy__",
}


class StageFailure(Exception):
    """A failure with a cause the user should read (`kind` names it for the worker)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no details"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(argv: Sequence[str], *, cwd: str | None = None, what: str) -> None:
    say(" ".join(argv))
    code = subprocess.call(list(argv), cwd=cwd)
    if code != 0:
        raise StageFailure("command", f"{what} failed (exit code {code}): {' '.join(argv)}")


def venv_python(venv: str) -> str:
    return str(Path(venv) / "bin" / "python")


def uv_install(request: Mapping[str, Any], venv: str, reqs: Sequence[str], *extra: str) -> None:
    if not reqs:
        return
    argv = [request["uv"], "pip", "install", "--python", venv_python(venv), *extra]
    run([*argv, *request["index_args"], *reqs], what=f"installing {', '.join(reqs)}")


def freeze(request: Mapping[str, Any], venv: str) -> list[str]:
    out = subprocess.check_output(
        [request["uv"], "pip", "freeze", "--python", venv_python(venv)], text=True
    )
    return sorted(line for line in out.splitlines() if line.strip())


def installed(venv: str) -> list[str]:
    """`name==version` of every distribution in the venv, read from its files: no interpreter
    of the venv runs (a `.pth` file of what was just installed would run with it)."""
    found = set()
    for meta in Path(venv).glob("lib/python3*/site-packages/*.dist-info/METADATA"):
        name = version = ""
        with meta.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                if key.lower() == "name":
                    name = value.strip()
                elif key.lower() == "version":
                    version = value.strip()
        if name and version:
            found.add(f"{name}=={version}")
    return sorted(found, key=str.lower)


def runtime(request: Mapping[str, Any]) -> dict[str, Any]:
    venv, snapshot = request["venv"], request["snapshot"]
    run([request["uv"], "venv", "--python", sys.executable, venv], what="creating the venv")
    try:
        uv_install(request, venv, request["runtime"], "--no-build")
    except StageFailure as exc:
        raise StageFailure(
            "runtime",
            f"{exc}; runtime pins are installed from wheels only (--no-build), since this stage"
            " fills the shared package cache and may run no package code",
        ) from None
    frozen = installed(venv)
    say(f"snapshot of the runtime environment at {snapshot}")
    # copies, not hard links: the build writes into the venv, and must not reach the snapshot
    shutil.copytree(venv, snapshot, symlinks=True, dirs_exist_ok=True)
    return {"python": sys.version.split()[0], "freeze": frozen}


def build_system(source: str) -> dict[str, Any]:
    pyproject = Path(source) / "pyproject.toml"
    if pyproject.is_file():
        table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("build-system")
        if table is not None:
            if "requires" not in table:
                raise StageFailure("build_system", "pyproject.toml [build-system] has no requires")
            return {**DEFAULT_BUILD_SYSTEM, **table} if "build-backend" not in table else table
        return dict(DEFAULT_BUILD_SYSTEM)
    if (Path(source) / "setup.py").is_file() or (Path(source) / "setup.cfg").is_file():
        return dict(DEFAULT_BUILD_SYSTEM)
    raise StageFailure(
        "build_system",
        "the source has no build system: neither pyproject.toml nor setup.py nor setup.cfg",
    )


def venv_cuda_paths(venv: str) -> dict[str, str]:
    """Headers and libraries of the CUDA wheels in the venv (cuBLAS, cuDNN, ... that torch
    pulls in), added to CPATH and LIBRARY_PATH: the toolkit image has only nvcc and cudart."""
    site = sorted(Path(venv).glob("lib/python3*/site-packages/nvidia"))
    if not site:
        return {}
    includes = sorted(str(p) for p in site[0].glob("*/include") if p.is_dir())
    libs = sorted(str(p) for p in site[0].glob("*/lib") if p.is_dir())
    paths: dict[str, str] = {}
    for var, found in (("CPATH", includes), ("LIBRARY_PATH", libs)):
        if found:
            paths[var] = os.pathsep.join([*found, *filter(None, [os.environ.get(var)])])
    return paths


def hook_caller(request: Mapping[str, Any]) -> BuildBackendHookCaller:
    if request.get("cuda"):
        os.environ.update(venv_cuda_paths(request["venv"]))
    system = build_system(request["source"])
    return BuildBackendHookCaller(
        request["source"],
        system["build-backend"],
        backend_path=system.get("backend-path"),
        python_executable=venv_python(request["venv"]),
        runner=hook_runner,
    )


def hook_runner(
    cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
) -> None:
    """Run a hook; the build environment was set on this process by the executor."""
    code = subprocess.call(list(cmd), cwd=cwd, env={**os.environ, **(extra_environ or {})})
    if code != 0:
        raise StageFailure("backend", f"the build backend failed (exit code {code})")


def build_deps(request: Mapping[str, Any]) -> dict[str, Any]:
    """The static build requirements: runs none of the package's code."""
    venv = request["venv"]
    system = build_system(request["source"])
    static = [*system["requires"], *request["extra"]]
    uv_install(request, venv, static)
    if request.get("ensure_ninja") and not shutil.which("ninja"):
        uv_install(request, venv, ["ninja"])
    return {"build_system": system, "static": static}


def requires(request: Mapping[str, Any]) -> dict[str, Any]:
    """Ask the backend what more it needs (this is where setup.py imports torch)."""
    system = build_system(request["source"])
    say(f"asking {system['build-backend']} for get_requires_for_build_wheel")
    try:
        dynamic = list(hook_caller(request).get_requires_for_build_wheel(request["config"]))
    except BackendUnavailable as exc:
        msg = f"backend {system['build-backend']!r} cannot be imported: {last_line(exc.traceback)}"
        raise StageFailure("backend", msg) from None
    say(f"the backend asks for: {', '.join(dynamic) or 'nothing more'}")
    return {"dynamic": dynamic}


def requires_install(request: Mapping[str, Any]) -> dict[str, Any]:
    """Install what the backend asked for: runs none of the package's code."""
    venv = request["venv"]
    uv_install(request, venv, request["requires"])
    return {"dynamic": list(request["requires"]), "freeze": freeze(request, venv)}


def build(request: Mapping[str, Any]) -> dict[str, Any]:
    outdir = request["outdir"]
    Path(outdir).mkdir(parents=True, exist_ok=True)
    say("build_wheel (no isolation)")
    cache = compilercache.start(request.get("compiler_cache"))
    try:
        name = hook_caller(request).build_wheel(outdir, request["config"])
    except HookMissing as exc:
        raise StageFailure("backend", f"the backend has no {exc.hook_name} hook") from None
    finally:
        stats = compilercache.stop(cache)
    return {"wheel": name, "compiler_cache": stats}


def top_level_modules(wheel: str) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        listed = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        if listed:
            text = zf.read(listed[0]).decode()
            found = {line.strip().replace("/", ".") for line in text.splitlines()}
            return sorted(m for m in found if m)
    modules: set[str] = set()
    for name in names:
        head, _, rest = name.partition("/")
        if head.endswith((".dist-info", ".data")):
            continue
        if rest:
            modules.add(head)
        elif head.endswith(".py"):
            modules.add(head[:-3])
        elif head.endswith((".so", ".pyd")):
            modules.add(head.split(".")[0])
    public = sorted(m for m in modules if not m.startswith("_"))
    return public or sorted(modules)


def verify(request: Mapping[str, Any]) -> dict[str, Any]:
    wheel, venv = request["wheel"], request["snapshot"]
    tags = parse_wheel_filename(Path(wheel).name)[3]
    supported = set(sys_tags())
    if not tags & supported:
        wanted = ", ".join(sorted(str(t) for t in tags))
        raise StageFailure(
            "tags", f"wheel tags {wanted} do not fit Python {sys.version.split()[0]}"
        )
    uv_install(request, venv, [wheel], "--no-deps", "--offline")
    modules = request.get("imports") or top_level_modules(wheel)
    if not modules:
        raise StageFailure("verify", "the wheel holds no importable top-level module")
    code = "import importlib,sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    say(f"importing {', '.join(modules)}")
    argv = [venv_python(venv), "-c", code, *modules]
    if subprocess.call(argv, cwd=request["scratch"]) != 0:
        raise StageFailure("verify", f"importing {', '.join(modules)} from the wheel failed")
    return {"imported": modules, "tags": sorted(str(t) for t in tags)}


ACTIONS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "runtime": runtime,
    "build_deps": build_deps,
    "requires": requires,
    "requires_install": requires_install,
    "build": build,
    "verify": verify,
}
