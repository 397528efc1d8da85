"""What the build stage adds to the backend's environment beyond the plan's variables.

- `build_ext --parallel N`: setuptools builds a package's extensions one after another
  (torch-scatter has eight) unless its `build_ext` command is told otherwise; a config file named
  by `DIST_EXTRA_CONFIG` (read after the package's own setup.cfg) tells it, with no change to the
  package.
  torch's BuildExtension runs ninja in that one build folder for every extension; the hook
  below gives each extension's ninja a folder of its own, so side by side they do not race.
- A line in the log when the backend reaches for the network the stage does not have: a
  `sitecustomize` on PYTHONPATH adds an audit hook that names each host a lookup asks for. The
  lookup itself fails at once (the container has only loopback: no name server answers, no
  route), so a setup.py that tries to download a prebuilt binary falls back to compiling, and
  the log says why.

Runs under the build image's Python with nothing but the standard library.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

EXTRA_CONFIG_NAME = "wheelwright-build-ext.cfg"
HOOK_FOLDER = "wheelwright-offline-hook"

#: The hook: names each host (once) that a lookup asks for, then lets the lookup fail as it
#: does; with extensions side by side, a ninja folder per extension. Chains to a sitecustomize
#: of the venv's own, which this one would otherwise hide.
BACKEND_HOOK = """\
import sys

_seen = set()


def _wheelwright_offline(event, args):
    if event != "socket.getaddrinfo":
        return
    host, port = args[0], args[1]
    if host is None or host in ("localhost", "::1") or str(host).startswith("127."):
        return
    if (host, port) in _seen:
        return
    _seen.add((host, port))
    sys.stderr.write(
        "==> network: the build looks up %s (port %s), but the build stage runs with the"
        " network off: the attempt fails at once, and a backend that falls back (from"
        " downloading a prebuilt binary, say) compiles instead\\n" % (host, port)
    )
    sys.stderr.flush()


sys.addaudithook(_wheelwright_offline)


# torch's BuildExtension writes every extension's build.ninja into the one build_temp and runs
# ninja there: extensions built side by side (build_ext --parallel) would overwrite each other's.
# Once torch.utils.cpp_extension is loaded, each call gets a folder of its own, named by its
# objects (the same in every build, for the compiler cache).
class _NinjaPerExtension:

    def find_spec(self, name, path=None, target=None):
        if name != "torch.utils.cpp_extension":
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _per_extension(module)

        spec.loader.exec_module = exec_module
        return spec


def _per_extension(module):
    import hashlib
    import os

    write = getattr(module, "_write_ninja_file_and_compile_objects", None)
    if write is None:
        sys.stderr.write("==> extensions side by side: this torch has no ninja writer to wrap\\n")
        return

    def per_call(*args, **kwargs):
        folder, objects = kwargs.get("build_directory"), kwargs.get("objects")
        if folder and objects:
            name = hashlib.sha256("\\0".join(sorted(objects)).encode()).hexdigest()[:12]
            kwargs["build_directory"] = os.path.join(folder, "ninja-" + name)
        return write(*args, **kwargs)

    module._write_ninja_file_and_compile_objects = per_call


if __import__("os").environ.get("WHEELWRIGHT_NINJA_PER_EXTENSION") == "1":
    sys.meta_path.insert(0, _NinjaPerExtension())


def _chain():
    import importlib.machinery
    import importlib.util
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_chain()
"""


def _scratch() -> Path:
    return Path(os.environ.get("TMPDIR") or tempfile.gettempdir())


def parallel_extensions(count: int | None) -> dict[str, str]:
    """`DIST_EXTRA_CONFIG` naming a file with `[build_ext] parallel = count` (nothing for
    None or 1), and a ninja folder per extension for torch's BuildExtension (the hook)."""
    if count is None or count < 2:
        return {}
    if shutil.which("ninja") is None:  # torch's compiler without ninja is not thread-safe
        print("==> extensions one at a time: no ninja on PATH", flush=True)
        return {}
    path = _scratch() / EXTRA_CONFIG_NAME
    path.write_text(f"[build_ext]\nparallel = {count}\n", encoding="utf-8")
    print(f"==> extensions built {count} at a time (build_ext --parallel {count})", flush=True)
    return {"DIST_EXTRA_CONFIG": str(path), "WHEELWRIGHT_NINJA_PER_EXTENSION": "1"}


def backend_hooks() -> dict[str, str]:
    """PYTHONPATH with the hooks' folder in front (the offline lookup line, the ninja folders)."""
    folder = _scratch() / HOOK_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(BACKEND_HOOK, encoding="utf-8")
    rest = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), rest]))}
