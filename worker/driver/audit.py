"""What verify checks in a wheel's compiled code, beyond importing it. Standard library only.

cuda archs       the SASS and PTX each extension module embeds (`cuobjdump --list-elf` and
                 `--list-ptx`), against the `TORCH_CUDA_ARCH_LIST` the wheel was built for: a
                 module with device code that lacks a wanted architecture fails verify.
undefined        every symbol an extension module needs that neither its libraries nor the
                 interpreter define (`ldd -r`, `nm -D`), demangled (`c++filt`): the whole list
                 behind the one "undefined symbol" an import reports.
gpu              which GPU this stage sees (through the runtime's torch, else `nvidia-smi`), and
                 the request's smoke test run on it: the proof that a kernel of the wheel ran.

Also a command for operators and tests, on an installed wheel or a wheel file:
    python3 audit.py archs WHEEL_OR_DIR "8.0;9.0"
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

#: torch.utils.cpp_extension's named architectures, as TORCH_CUDA_ARCH_LIST accepts them.
NAMED_ARCHS = {
    "Kepler+Tesla": "3.7",
    "Kepler": "3.5+PTX",
    "Maxwell+Tegra": "5.3",
    "Maxwell": "5.0;5.2+PTX",
    "Pascal": "6.0;6.1+PTX",
    "Volta+Tegra": "7.2",
    "Volta": "7.0+PTX",
    "Turing": "7.5+PTX",
    "Ampere+Tegra": "8.7",
    "Ampere": "8.0;8.6+PTX",
    "Ada": "8.9+PTX",
    "Hopper": "9.0+PTX",
}
_ARCH_RE = re.compile(r"^(\d+)\.(\d+)([af]?)(\+PTX)?$")
#: `ELF file    1: k.1.sm_90.cubin`, `PTX file    1: k.1.sm_120.ptx` (cuobjdump's listings).
_LISTED_RE = re.compile(r"\.sm_(\d+[af]?)\.(?:cubin|ptx)$")
_UNDEFINED_RE = re.compile(r"undefined symbol: (\S+)")
EXTENSION_SUFFIXES = (".so", ".pyd")
TOOL_TIMEOUT_S = 120


class AuditError(Exception):
    """An audit that found a defect (the message names it) or could not run."""


def parse_arch_list(text: str) -> tuple[list[str], list[str]]:
    """`8.0;9.0a;12.0+PTX` -> SASS wanted (`sm_80`, `sm_90a`, `sm_120`) and PTX (`compute_120`)."""
    sass: list[str] = []
    ptx: list[str] = []
    entries = [e for e in re.split(r"[;,\s]+", text.strip()) if e]
    expanded: list[str] = []
    for entry in entries:
        named = NAMED_ARCHS.get(entry)
        expanded += named.split(";") if named else [entry]
    for entry in expanded:
        match = _ARCH_RE.match(entry)
        if not match:
            raise AuditError(
                f"TORCH_CUDA_ARCH_LIST entry {entry!r} is not like '9.0' or '12.0+PTX'"
            )
        number = f"{match.group(1)}{match.group(2)}{match.group(3)}"
        if f"sm_{number}" not in sass:
            sass.append(f"sm_{number}")
        if match.group(4) and f"compute_{number}" not in ptx:
            ptx.append(f"compute_{number}")
    if not sass:
        raise AuditError("TORCH_CUDA_ARCH_LIST names no architecture")
    return sass, ptx


def arch_label(name: str) -> str:
    """`sm_90a` -> `9.0a`, `compute_120` -> `12.0+PTX`: how TORCH_CUDA_ARCH_LIST writes it."""
    kind, _, number = name.partition("_")
    digits = number.rstrip("af")
    label = f"{digits[:-1]}.{digits[-1]}{number[len(digits) :]}"
    return f"{label}+PTX" if kind == "compute" else label


def extension_modules(root: Path) -> list[Path]:
    """Compiled modules (`.so`, `.pyd`) under `root`, sorted, links not followed."""
    found = [
        p
        for p in root.rglob("*")
        if p.name.endswith(EXTENSION_SUFFIXES) and p.is_file() and not p.is_symlink()
    ]
    return sorted(found)


def find_tool(name: str) -> str | None:
    """A CUDA tool on PATH or under CUDA_HOME/bin."""
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home and os.access(Path(home, "bin", name), os.X_OK):
            return str(Path(home, "bin", name))
    return shutil.which(name)


def _tool_output(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TOOL_TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AuditError(f"{Path(argv[0]).name} could not run: {exc}") from None
    return proc.returncode, proc.stdout + proc.stderr


def embedded_archs(cuobjdump: str, module: Path) -> tuple[list[str], list[str]]:
    """SASS (`sm_90`) and PTX (`compute_90`) architectures embedded in one module."""
    found: dict[str, list[str]] = {}
    for flag, prefix in (("--list-elf", "sm"), ("--list-ptx", "compute")):
        code, out = _tool_output([cuobjdump, flag, str(module)])
        if "does not contain device code" in out:
            return [], []
        if code != 0:
            raise AuditError(f"cuobjdump {flag} {module.name} failed: {_last_line(out)}")
        listed = (_LISTED_RE.search(line.strip()) for line in out.splitlines())
        numbers = sorted({m.group(1) for m in listed if m}, key=_arch_order)
        found[prefix] = [f"{prefix}_{n}" for n in numbers]
    return found["sm"], found["compute"]


def audit_cuda_archs(
    modules_found: list[Path], root: Path, arch_list: str, cuobjdump: str | None = None
) -> dict[str, Any]:
    """Each module's architectures against `arch_list`; `AuditError` naming what is missing.

    `modules_found` are the wheel's compiled modules, named in the report relative to `root`."""
    wanted_sass, wanted_ptx = parse_arch_list(arch_list)
    tool = cuobjdump or find_tool("cuobjdump")
    if tool is None:
        raise AuditError(
            "cuobjdump is not on PATH or in CUDA_HOME/bin: the architecture audit of a CUDA "
            "wheel needs it (the PyPI wheel nvidia-cuda-cuobjdump carries it)"
        )
    modules: dict[str, dict[str, list[str]]] = {}
    missing: list[str] = []
    for module in modules_found:
        sass, ptx = embedded_archs(tool, module)
        name = module.relative_to(root).as_posix()
        modules[name] = {"sass": sass, "ptx": ptx}
        lacking = missing_archs(wanted_sass, wanted_ptx, sass, ptx)
        if lacking:
            labels = ", ".join(arch_label(a) for a in lacking)
            missing.append(f"{name} lacks {labels}")
    report = {
        "arch_list": arch_list,
        "wanted": [arch_label(a) for a in wanted_sass + wanted_ptx],
        "sass": sorted({a for m in modules.values() for a in m["sass"]}, key=_arch_order),
        "ptx": sorted({a for m in modules.values() for a in m["ptx"]}, key=_arch_order),
        "modules": modules,
        "device_code": any(m["sass"] or m["ptx"] for m in modules.values()),
    }
    if missing:
        raise AuditError(
            f"the wheel does not hold code for the architectures it was built for "
            f"(TORCH_CUDA_ARCH_LIST={arch_list}): {'; '.join(missing)}"
        )
    return report


def missing_archs(
    wanted_sass: list[str], wanted_ptx: list[str], sass: list[str], ptx: list[str]
) -> list[str]:
    """What a module lacks of the wanted SASS and PTX; nothing for a module with no device
    code at all (host code only: a loader, a version module)."""
    if not sass and not ptx:
        return []
    return [a for a in wanted_sass if a not in sass] + [p for p in wanted_ptx if p not in ptx]


def _arch_order(name: str) -> tuple[int, str]:
    digits = re.sub(r"\D", "", name)
    return (int(digits or 0), name)


def library_dirs(site: Path) -> list[str]:
    """Folders of shared libraries in a site-packages (torch/lib, nvidia/*/lib, ...)."""
    dirs = {str(p.parent) for p in site.rglob("*.so*") if ".so" in p.name and p.is_file()}
    return sorted(dirs)


def interpreter_symbols(python: str) -> set[str]:
    """Dynamic symbols the interpreter defines (its executable and a libpython, if shared)."""
    binary = os.path.realpath(python)
    objects = [binary]
    _code, deps = _tool_output(["ldd", binary])
    objects += re.findall(r"=>\s*(\S*libpython[^\s]*)", deps)
    symbols: set[str] = set()
    for obj in objects:
        _code, out = _tool_output(["nm", "-D", "--defined-only", obj])
        symbols |= {line.split()[-1] for line in out.splitlines() if len(line.split()) >= 3}
    return symbols


def demangle(symbols: list[str]) -> list[str]:
    tool = shutil.which("c++filt")
    if tool is None or not symbols:
        return symbols
    try:
        out = subprocess.run(
            [tool], input="\n".join(symbols), capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return symbols
    names = out.splitlines()
    return names if len(names) == len(symbols) else symbols


def undefined_symbols(modules_found: list[Path], root: Path, python: str) -> dict[str, list[str]]:
    """Per module, the symbols that nothing in reach defines, demangled, sorted: what the
    module's libraries (found in `root`'s library folders, like torch/lib) and the interpreter
    leave undefined."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [*library_dirs(root), *filter(None, [os.environ.get("LD_LIBRARY_PATH")])]
    )
    provided = interpreter_symbols(python)
    report: dict[str, list[str]] = {}
    for module in modules_found:
        _code, out = _tool_output(["ldd", "-r", str(module)], env)
        missing = sorted({s for s in _UNDEFINED_RE.findall(out) if s not in provided})
        if missing:
            report[module.relative_to(root).as_posix()] = sorted(demangle(missing))
    return report


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


GPU_PROBE = """
import json
try:
    import torch
except Exception:
    print(json.dumps(None))
else:
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        print(json.dumps({"device": torch.cuda.get_device_name(0),
                          "capability": f"{major}.{minor}",
                          "count": torch.cuda.device_count(), "via": "torch"}))
    else:
        print(json.dumps({"device": None, "via": "torch"}))
"""


def gpu_probe(python: str, cwd: str) -> dict[str, Any] | None:
    """The GPU this stage sees (`device`, `capability`), or None when it sees none."""
    try:
        proc = subprocess.run(
            [python, "-c", GPU_PROBE],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
        found = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        found = None
    if found is not None:
        return found if found.get("device") else None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    code, out = _tool_output([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"])
    rows = [row.split(",") for row in out.strip().splitlines() if "," in row]
    if code != 0 or not rows:
        return None
    name, capability = (part.strip() for part in rows[0][:2])
    return {"device": name, "capability": capability, "count": len(rows), "via": "nvidia-smi"}


def _wheel_root(path: Path, scratch: Path) -> Path:
    if path.is_dir():
        return path
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            if member.endswith(EXTENSION_SUFFIXES):
                target = (scratch / member).resolve()
                if not target.is_relative_to(scratch.resolve()):
                    raise AuditError(f"wheel member {member!r} escapes the wheel")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))
    return scratch


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] != "archs":
        print('usage: audit.py archs WHEEL_OR_DIR "8.0;9.0+PTX"', file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        try:
            root = _wheel_root(Path(argv[2]), Path(scratch))
            report = audit_cuda_archs(extension_modules(root), root, argv[3])
        except AuditError as exc:
            print(json.dumps({"ok": False, "error": str(exc)}))
            return 1
    print(json.dumps({"ok": True, "cuda": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
