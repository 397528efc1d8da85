"""Build and bootstrap the build images: `wheelwright/build-cpu` and `wheelwright/build-cuda`.

The CPU image starts from `python:X.Y-slim` where a registry answers, or else from
`wheelwright/base:bookworm`, a Debian made with debootstrap (`docker/base/debootstrap.sh`) whose
Python is 3.11. The CUDA image is the CPU image plus a CUDA toolkit from NVIDIA's PyPI wheels (or,
from an `nvidia/cuda:*-devel` base, that image's own toolkit). The Dockerfiles live in `docker/`;
each build gets a temporary context of its folder plus `ca.pem`, the CA bundle of a
TLS-intercepting proxy (empty when there is none). Builds use host networking.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors

from service.errors import ImageError
from worker.proxy import PROXY_VARS

ImageKind = Literal["cpu", "cuda"]
Progress = Callable[[str], None]

OFFLINE_BASE = "wheelwright/base:bookworm"
OFFLINE_PYTHON = "3.11"  # Debian bookworm's python3
LABEL_PREFIX = "org.wheelwright."
_VERSION_RE = re.compile(r"^\d+\.\d+$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_BUILD_TIMEOUT_S = 3600  # one HTTP read may wait this long for a quiet build step
_LOG_TAIL = 25
RECIPE_LAYERS = {"build-cuda": ("build-cpu", "build-cuda")}


def docker_dir() -> Path:
    """The folder with the Dockerfiles.

    `WHEELWRIGHT_DOCKER_DIR` when set; in an installed wheel, `worker/_docker` (the wheel
    carries the folder there); in a checkout, `docker/` at the repository root.
    """
    override = os.environ.get("WHEELWRIGHT_DOCKER_DIR")
    if override:
        return Path(override)
    packaged = Path(__file__).resolve().parent / "_docker"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[1] / "docker"
    if (checkout / "build-cpu" / "Dockerfile").is_file():
        return checkout
    raise ImageError("the Dockerfiles are missing: set WHEELWRIGHT_DOCKER_DIR to their folder")


def image_tag(kind: ImageKind, python: str, cuda: str | None = None) -> str:
    """`wheelwright/build-cpu:py3.11`, `wheelwright/build-cuda:cu13.0-py3.11`."""
    _check_version("python", python)
    if kind == "cpu":
        return f"wheelwright/build-cpu:py{python}"
    if cuda is None:
        raise ImageError("a CUDA image needs a CUDA version, such as '13.0'")
    _check_version("cuda", cuda)
    return f"wheelwright/build-cuda:cu{cuda}-py{python}"


def ensure_image(
    client: docker.DockerClient,
    kind: ImageKind,
    python: str,
    cuda: str | None = None,
    *,
    base: str | None = None,
    offline: bool | None = None,
    ca_bundle: Path | None = None,
    rebuild: bool = False,
    progress: Progress = lambda _l: None,
) -> str:
    """Return the id of the build image for (kind, python, cuda), building it when missing.

    `base` is the bottom of the stack: the OS + Python image the CPU layer starts from (for a
    CUDA image, e.g. `nvidia/cuda:13.0.0-devel-ubuntu24.04`; its CPU layer then gets a tag of
    its own). Without it, `offline` picks the base: True, the debootstrap base (Python 3.11
    only); False, `python:X.Y-slim`; None, `python:X.Y-slim` when present or pullable, else the
    debootstrap base. `rebuild` builds this image again without the layer cache (fresh packages);
    the CPU image under a CUDA one is reused when present, and so is the debootstrap base.
    """
    tag = image_tag(kind, python, cuda)
    folder = f"build-{kind}"
    if not rebuild and (found := find_image(client, tag)) is not None:
        if _recipe_label(client, found) == recipe_digest(folder):
            return found
        progress(f"{tag} was built from another recipe than docker/{folder}: rebuilding it")
    ca = resolve_ca_bundle(ca_bundle)
    if kind == "cpu":
        bottom = cpu_base_image(client, python, base, offline, progress)
        args = {"BASE": bottom, "PYTHON": python}
        return _build(client, folder, tag, args, ca=ca, progress=progress, nocache=rebuild)
    if cuda is None:  # image_tag raised already; this tells the type checker
        raise ImageError("a CUDA image needs a CUDA version")
    cpu_tag = image_tag("cpu", python)
    if base is not None:
        cpu_tag += "-base-" + hashlib.sha256(base.encode()).hexdigest()[:12]
        if find_image(client, cpu_tag) is None:
            cpu_args = {"BASE": base, "PYTHON": python}
            _build(client, "build-cpu", cpu_tag, cpu_args, ca=ca, progress=progress)
    else:
        ensure_image(client, "cpu", python, offline=offline, ca_bundle=ca, progress=progress)
    args = {"BASE": cpu_tag, "CUDA": cuda}
    return _build(client, folder, tag, args, ca=ca, progress=progress, nocache=rebuild)


def image_facts(client: docker.DockerClient, tag_or_id: str) -> dict[str, str]:
    """`id`, `kind`, `python` and (CUDA images) `cuda` of a build image, from its labels."""
    try:
        image = client.images.get(tag_or_id)
    except docker.errors.ImageNotFound:
        raise ImageError(f"image {tag_or_id!r} does not exist") from None
    except docker.errors.DockerException as exc:
        raise ImageError(f"cannot inspect image {tag_or_id!r}: {exc}") from None
    labels: dict[str, str] = image.labels or {}
    facts = {"id": str(image.id)}
    for name in ("kind", "python", "cuda"):
        if (value := labels.get(LABEL_PREFIX + name)) is not None:
            facts[name] = value
    if "kind" not in facts or "python" not in facts:
        raise ImageError(f"image {tag_or_id!r} is not a Wheelwright build image (labels missing)")
    return facts


def recipe_digest(folder: str) -> str:
    """What an image of `docker/<folder>` is made from: its files and those of the layers below
    it (the CPU image under a CUDA one), by name and content. A build image whose recipe label
    differs is rebuilt: its Dockerfile changed since."""
    digest = hashlib.sha256()
    for layer in RECIPE_LAYERS.get(folder, (folder,)):
        root = docker_dir() / layer
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            name = f"{layer}/{path.relative_to(root).as_posix()}"
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _recipe_label(client: docker.DockerClient, image_id: str) -> str | None:
    try:
        labels = client.images.get(image_id).labels or {}
    except docker.errors.DockerException:
        return None
    return labels.get(LABEL_PREFIX + "recipe")


def _check_version(what: str, value: str) -> None:
    if not _VERSION_RE.match(value):
        raise ImageError(f"{what} version {value!r} must look like '3.11' or '13.0'")


def find_image(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.DockerException as exc:
        raise ImageError(f"cannot reach the Docker engine to look up {ref!r}: {exc}") from None


def resolve_ca_bundle(given: Path | None) -> Path | None:
    if given is not None:
        if not given.is_file():
            raise ImageError(f"CA bundle {given} does not exist")
        return given
    for var in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    return None


def cpu_base_image(
    client: docker.DockerClient,
    python: str,
    base: str | None,
    offline: bool | None,
    progress: Progress,
) -> str:
    if base is not None:
        return base
    online = f"python:{python}-slim"
    if offline is False:
        return online
    if offline is None:
        if find_image(client, online) is not None:
            return online
        progress(f"pulling {online}")
        try:
            client.images.pull("python", tag=f"{python}-slim")
        except docker.errors.DockerException as exc:
            progress(f"cannot pull {online} ({_first_line(exc)}); using the debootstrap base")
        else:
            return online
    if python != OFFLINE_PYTHON:
        raise ImageError(
            f"Python {python} needs the online base {online}, which cannot be used here; the "
            f"offline base (Debian bookworm) only offers Python {OFFLINE_PYTHON}"
        )
    _ensure_offline_base(client, progress)
    return OFFLINE_BASE


def _ensure_offline_base(client: docker.DockerClient, progress: Progress) -> None:
    if find_image(client, OFFLINE_BASE) is not None:
        return
    script = docker_dir() / "base" / "debootstrap.sh"
    progress(f"building {OFFLINE_BASE} with {script}")
    tail: deque[str] = deque(maxlen=_LOG_TAIL)
    with subprocess.Popen(
        ["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout or ():
            tail.append(line.rstrip("\n"))
            progress(tail[-1])
    if proc.returncode != 0:
        raise ImageError(f"{script} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    if find_image(client, OFFLINE_BASE) is None:
        raise ImageError(
            f"{script} succeeded but {OFFLINE_BASE} is not in this engine (DOCKER_HOST differs?)"
        )


def _build(
    client: docker.DockerClient,
    folder: str,
    tag: str,
    buildargs: dict[str, str],
    *,
    ca: Path | None,
    progress: Progress,
    nocache: bool = False,
) -> str:
    proxies = proxy_buildargs()
    # Proxy URLs may hold credentials: name them, never show them.
    shown = " ".join([*(f"{k}={v}" for k, v in buildargs.items()), *proxies])
    progress(f"building {tag} from docker/{folder} ({shown})")
    with tempfile.TemporaryDirectory(prefix="wheelwright-context-") as tmp:
        context = Path(tmp) / folder
        shutil.copytree(docker_dir() / folder, context)
        (context / "ca.pem").write_bytes(ca.read_bytes() if ca is not None else b"")
        return docker_build(
            client,
            tag,
            progress,
            path=str(context),
            buildargs={**proxies, **buildargs},
            nocache=nocache,
            labels={LABEL_PREFIX + "recipe": recipe_digest(folder)},
        )


def proxy_buildargs() -> dict[str, str]:
    return {k: v for k in PROXY_VARS if (v := os.environ.get(k))}


def docker_build(client: docker.DockerClient, tag: str, progress: Progress, **build: Any) -> str:
    """Run one image build (`build`: the context and options of `client.api.build`), relay its
    log, and return the new image's id; the image the tag named before goes if unused."""
    previous = find_image(client, tag)
    tail: deque[str] = deque(maxlen=_LOG_TAIL)
    try:
        chunks = client.api.build(
            tag=tag,
            network_mode="host",
            rm=True,
            forcerm=True,
            decode=True,
            timeout=_BUILD_TIMEOUT_S,
            **build,
        )
        follow_build(chunks, tag, tail, progress)
    except docker.errors.DockerException as exc:
        raise ImageError(f"building {tag} failed: {exc}") from None
    image_id = find_image(client, tag)
    if image_id is None:
        raise ImageError(f"building {tag} finished but the image is missing:\n" + "\n".join(tail))
    progress(f"built {tag} ({image_id[:19]})")
    if previous not in (None, image_id):
        with contextlib.suppress(docker.errors.DockerException):  # in use: it stays
            client.images.remove(previous)
    return image_id


def follow_build(
    chunks: Iterator[dict[str, Any]], tag: str, tail: deque[str], progress: Progress
) -> None:
    """Relay the build's log lines to `progress`; raise on the engine's `error` chunk.

    The engine's `stream` chunks are not whole lines (a step's stderr comes in pieces, each
    wrapped in colour codes), so pieces are joined up to each line end.
    """
    pending = ""

    def emit(text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                tail.append(line)
                progress(line)

    for chunk in chunks:
        if "error" in chunk:
            emit(pending)
            log = "\n".join(tail)
            raise ImageError(f"building {tag} failed: {str(chunk['error']).strip()}\n{log}")
        pending += _ANSI_RE.sub("", str(chunk.get("stream", "")))
        done, newline, pending = pending.rpartition("\n")
        emit(done + newline)
    emit(pending)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
