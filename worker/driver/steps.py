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
import sysconfig
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename
from pyproject_hooks import BackendUnavailable, BuildBackendHookCaller, HookMissing

try:  # the worker (and its tests) import this module from the package
    from worker.driver import audit
except ImportError:  # the build container: a flat bundle, audit.py beside this file
    import audit  # type: ignore[import-not-found,no-redef,unused-ignore]

try:
    import tomllib
except ImportError:  # Python < 3.11 in the build image: pip carries a copy of tomli
    from pip._vendor import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

if TYPE_CHECKING or __package__:
    from worker.driver import backend_env, compilercache, contract, toolchain
    from worker.driver.installs import (
        freeze,
        inherit_host_packages,
        installed,
        last_line,
        partition,
        run,
        say,
        still_needed,
        uv_install,
        venv_python,
    )
else:  # the flat bundle in the build container
    import backend_env  # type: ignore[import-not-found,no-redef,unused-ignore]
    import compilercache
    import contract
    import toolchain  # type: ignore[import-not-found,no-redef,unused-ignore]
    from installs import (  # type: ignore[import-not-found,no-redef,unused-ignore]
        freeze,
        inherit_host_packages,
        installed,
        last_line,
        partition,
        run,
        say,
        still_needed,
        uv_install,
        venv_python,
    )

StageError = contract.StageError

DEFAULT_BUILD_SYSTEM = {
    "requires": ["setuptools>=40.8.0"],
    "build-backend": "setuptools.build_meta:__legacy__",
}


def runtime(request: contract.RuntimeRequest) -> contract.RuntimeResult:
    venv, snapshot = request["venv"], request["snapshot"]
    run([request["uv"], "venv", "--python", sys.executable, venv], what="creating the venv")
    inherited: list[str] = []
    if request.get("inherit_packages"):
        inherit_host_packages(venv)
        inherited = freeze(request, venv, everything=True)
    needed, satisfied = partition(request, venv, request["runtime"])
    try:
        uv_install(request, venv, needed, "--no-build")
    except StageError as exc:
        raise StageError(
            "runtime",
            f"{exc}; runtime pins are installed from wheels only (--no-build), since this stage"
            " fills the shared package cache and may run no package code",
        ) from None
    # The runtime is what was asked for: the venv's own packages and the inherited ones that
    # stand for a runtime pin (the ABI pins come from here), not every package of the host.
    frozen = sorted({*installed(venv), *satisfied}, key=str.lower)
    say(f"snapshot of the runtime environment at {snapshot}")
    # copies, not hard links: the build writes into the venv, and must not reach the snapshot
    shutil.copytree(venv, snapshot, symlinks=True, dirs_exist_ok=True)
    result: contract.RuntimeResult = {"python": sys.version.split()[0], "freeze": frozen}
    if inherited:
        result["inherited"] = inherited
    return result


def build_system(source: str) -> dict[str, Any]:
    pyproject = Path(source) / "pyproject.toml"
    if pyproject.is_file():
        table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("build-system")
        if table is not None:
            if "requires" not in table:
                raise StageError("build_system", "pyproject.toml [build-system] has no requires")
            return {**DEFAULT_BUILD_SYSTEM, **table} if "build-backend" not in table else table
        return dict(DEFAULT_BUILD_SYSTEM)
    if (Path(source) / "setup.py").is_file() or (Path(source) / "setup.cfg").is_file():
        return dict(DEFAULT_BUILD_SYSTEM)
    raise StageError(
        "build_system",
        "the source has no build system: neither pyproject.toml nor setup.py nor setup.cfg",
    )


def venv_cuda_paths(venv: str, *, inherited: bool = False) -> dict[str, str]:
    """Headers and libraries of the CUDA wheels in the venv (cuBLAS, cuDNN, ... that torch
    pulls in), added to CPATH and LIBRARY_PATH: the toolkit image has only nvcc and cudart.
    With `inherited`, those of this interpreter's packages too (where the host's torch is)."""
    sites = sorted(Path(venv).glob("lib/python3*/site-packages/nvidia"))
    if inherited:
        sites.append(Path(sysconfig.get_paths()["platlib"]) / "nvidia")
    includes = sorted(str(p) for site in sites for p in site.glob("*/include") if p.is_dir())
    libs = sorted(str(p) for site in sites for p in site.glob("*/lib") if p.is_dir())
    paths: dict[str, str] = {}
    for var, found in (("CPATH", includes), ("LIBRARY_PATH", libs)):
        if found:
            paths[var] = os.pathsep.join([*found, *filter(None, [os.environ.get(var)])])
    return paths


def hook_caller(
    request: contract.RequiresRequest | contract.WheelRequest,
) -> BuildBackendHookCaller:
    if request.get("cuda"):
        inherited = bool(request.get("inherit_packages"))
        os.environ.update(venv_cuda_paths(request["venv"], inherited=inherited))
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
        raise StageError("backend", f"the build backend failed (exit code {code})")


def build_deps(request: contract.BuildDepsRequest) -> contract.BuildDepsResult:
    """The static build requirements: runs none of the package's code."""
    venv = request["venv"]
    system = build_system(request["source"])
    static = [*system["requires"], *request["extra"]]
    uv_install(request, venv, still_needed(request, venv, static))
    if request.get("ensure_ninja") and not shutil.which("ninja"):
        try:
            uv_install(request, venv, still_needed(request, venv, ["ninja"]))
        except StageError:
            if "--no-index" not in request["index_args"]:
                raise
            say("warning: no ninja on PATH nor among the find-links: extensions compile serially")
    return {"build_system": system, "static": static}


def requires(request: contract.RequiresRequest) -> contract.RequiresResult:
    """Ask the backend what more it needs (this is where setup.py imports torch)."""
    system = build_system(request["source"])
    say(f"asking {system['build-backend']} for get_requires_for_build_wheel")
    try:
        dynamic = list(hook_caller(request).get_requires_for_build_wheel(request["config"]))
    except BackendUnavailable as exc:
        msg = f"backend {system['build-backend']!r} cannot be imported: {last_line(exc.traceback)}"
        raise StageError("backend_unavailable", msg) from None
    say(f"the backend asks for: {', '.join(dynamic) or 'nothing more'}")
    return {"dynamic": dynamic}


def requires_install(request: contract.RequiresInstallRequest) -> contract.RequiresInstallResult:
    """Install what the backend asked for: runs none of the package's code."""
    venv = request["venv"]
    uv_install(request, venv, still_needed(request, venv, request["requires"]))
    freeze_all = freeze(request, venv, everything=True)
    return {"dynamic": list(request["requires"]), "freeze": freeze_all}


def build(request: contract.WheelRequest) -> contract.WheelResult:
    outdir = request["outdir"]
    Path(outdir).mkdir(parents=True, exist_ok=True)
    tools = toolchain.versions()  # before the compiler cache puts its wrappers first on PATH
    say("build_wheel (no isolation)")
    os.environ.update(backend_env.backend_hooks())
    os.environ.update(backend_env.parallel_extensions(request.get("parallel_extensions")))
    cache = compilercache.start(request.get("compiler_cache"))
    try:
        name = hook_caller(request).build_wheel(outdir, request["config"])
    except HookMissing as exc:
        raise StageError("hook_missing", f"the backend has no {exc.hook_name} hook") from None
    except BackendUnavailable as exc:
        msg = f"the build backend cannot be imported: {last_line(exc.traceback)}"
        raise StageError("backend_unavailable", msg) from None
    finally:
        stats = compilercache.stop(cache)
    return {"wheel": name, "compiler_cache": stats, "toolchain": tools}


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


def site_packages(venv: str) -> Path:
    found = sorted(Path(venv).glob("lib/python3*/site-packages"))
    if not found:
        raise StageError("verify", f"the runtime environment {venv} has no site-packages")
    return found[0]


def installed_modules(wheel: str, site: Path) -> list[Path]:
    """The wheel's compiled modules where the install put them (root members only)."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(audit.EXTENSION_SUFFIXES)]
    return sorted(site / n for n in names if ".data/" not in n and (site / n).is_file())


def import_modules(venv: str, modules: Sequence[str], scratch: str) -> str | None:
    """Import `modules` in the runtime environment; None, or the output of the failed import."""
    code = "import importlib,sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    say(f"importing {', '.join(modules)}")
    argv = [venv_python(venv), "-c", code, *modules]
    proc = subprocess.run(
        argv, cwd=scratch, capture_output=True, text=True, errors="replace", check=False
    )
    print(proc.stdout + proc.stderr, end="", flush=True)
    return None if proc.returncode == 0 else proc.stdout + proc.stderr


def explain_import_failure(
    output: str, compiled: list[Path], site: Path, venv: str, modules: Sequence[str]
) -> StageError:
    """The import's failure, with every unresolved symbol of every module when that was it."""
    failed = f"importing {', '.join(modules)} from the wheel failed: {last_line(output)}"
    if "undefined symbol" not in output or not compiled:
        return StageError("verify", failed)
    try:
        missing = audit.undefined_symbols(compiled, site, venv_python(venv))
    except audit.AuditError as exc:
        say(f"could not list the undefined symbols: {exc}")
        return StageError("verify", failed)
    if not missing:
        return StageError("verify", failed)
    for module, symbols in missing.items():
        say(f"{module}: {len(symbols)} undefined symbols")
        for symbol in symbols:
            print(f"    {symbol}", flush=True)
    listing = "; ".join(f"{m}: {', '.join(syms)}" for m, syms in missing.items())
    return StageError(
        "undefined_symbols",
        f"{failed}. Undefined symbols (built against another torch or library?): {listing}",
    )


def cuda_checks(
    request: contract.VerifyRequest, compiled: list[Path], site: Path
) -> dict[str, Any]:
    """The architecture audit of a CUDA wheel (GPU or not)."""
    arch_list = request.get("cuda_arch_list")
    if not arch_list:
        raise StageError("cuda_archs", "a CUDA build must say its TORCH_CUDA_ARCH_LIST")
    say(f"auditing CUDA architectures against TORCH_CUDA_ARCH_LIST={arch_list}")
    try:
        report = audit.audit_cuda_archs(compiled, site, arch_list)
    except audit.AuditError as exc:
        raise StageError("cuda_archs", str(exc)) from None
    for module, found in report["modules"].items():
        archs = [audit.arch_label(a) for a in found["sass"] + found["ptx"]]
        say(f"{module}: {', '.join(archs) or 'no device code'}")
    if not report["device_code"]:
        say("warning: no extension module of this CUDA wheel holds device code")
    return report


def gpu_check(request: contract.VerifyRequest, venv: str) -> dict[str, Any]:
    """Which GPU this stage has and, given one and a smoke test, the smoke test run on it."""
    found = audit.gpu_probe(venv_python(venv), request["scratch"])
    smoke = request.get("smoke")
    if found is None:
        say("no GPU in this stage: the wheel's kernels were not run")
        return {"present": False, "kernel_run": False, "reason": "no GPU in the verify stage"}
    report: dict[str, Any] = {"present": True, **found, "kernel_run": False}
    say(f"GPU: {found['device']} (compute capability {found.get('capability')})")
    if not smoke:
        say("no smoke test given: the wheel's kernels were not run")
        return {**report, "reason": "no smoke test given"}
    say("running the smoke test on the GPU")
    code = subprocess.call([venv_python(venv), "-c", smoke], cwd=request["scratch"])
    if code != 0:
        raise StageError("smoke", f"the smoke test failed on {found['device']} (exit code {code})")
    return {**report, "kernel_run": True, "smoke": "passed"}


def verify(request: contract.VerifyRequest) -> contract.VerifyResult:
    wheel, venv = request["wheel"], request["snapshot"]
    if not wheel:
        raise StageError("verify", "the verify request names no wheel")
    tags = parse_wheel_filename(Path(wheel).name)[3]
    supported = set(sys_tags())
    if not tags & supported:
        wanted = ", ".join(sorted(str(t) for t in tags))
        raise StageError("tags", f"wheel tags {wanted} do not fit Python {sys.version.split()[0]}")
    uv_install(request, venv, [wheel], "--no-deps", "--offline")
    modules = request.get("imports") or top_level_modules(wheel)
    if not modules:
        raise StageError("verify", "the wheel holds no importable top-level module")
    site = site_packages(venv)
    compiled = installed_modules(wheel, site)
    failure = import_modules(venv, modules, request["scratch"])
    if failure is not None:
        raise explain_import_failure(failure, compiled, site, venv, modules)
    result: contract.VerifyResult = {
        "imported": list(modules),
        "tags": sorted(str(t) for t in tags),
        "gpu": gpu_check(request, venv),
    }
    if request.get("cuda"):
        result["cuda"] = cuda_checks(request, compiled, site)
    return result


#: Each stage's function; its request and result are the TypedDicts of `contract.py`.
ACTIONS: dict[contract.StageName, Callable[[Any], Mapping[str, Any]]] = {
    "runtime": runtime,
    "build_deps": build_deps,
    "requires": requires,
    "requires_install": requires_install,
    "build": build,
    "verify": verify,
}
