"""Build the service images: `wheelwright/api` and `wheelwright/worker` (docker/api, docker/worker).

Unlike the build images, these take the repository root as their build context (they install
the project), filtered by the root `.dockerignore`; the CA bundle of a TLS-intercepting proxy
joins the context as `docker/service/ca.pem` (empty when there is none). The base is picked as
for the CPU build image: `python:3.11-slim` where a registry answers, else the debootstrap base.
Builds use host networking. The tag is `wheelwright/<which>:<project version>`, the image the
Helm chart runs by default.
"""

from __future__ import annotations

import contextlib
import tempfile
import tomllib
from pathlib import Path
from typing import Literal

import docker
import docker.errors
from docker.utils.build import create_archive, exclude_paths

from service.errors import ImageError
from worker.images import (
    OFFLINE_PYTHON,
    Progress,
    cpu_base_image,
    docker_build,
    proxy_buildargs,
    resolve_ca_bundle,
)

ServiceImage = Literal["api", "worker"]

CA_IN_CONTEXT = "docker/service/ca.pem"
STAGE_LABEL = "org.wheelwright.image-stage=service-build"  # set by the Dockerfiles' build stage
_BUILD_TIMEOUT_S = 1800  # one HTTP read may wait this long for a quiet build step
_LOG_TAIL = 25


def source_root() -> Path:
    """The repository these modules were loaded from (a source checkout, not an installed wheel)."""
    return Path(__file__).resolve().parents[1]


def service_image_tag(which: ServiceImage, root: Path | None = None) -> str:
    """`wheelwright/api:0.1.0`: the project version from `pyproject.toml` of the checkout."""
    pyproject = (root or source_root()) / "pyproject.toml"
    try:
        version = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise ImageError(f"cannot read the project version from {pyproject}: {exc}") from None
    return f"wheelwright/{which}:{version}"


def context_files(root: Path) -> list[str]:
    """The files of the build context: `root` less what its `.dockerignore` leaves out."""
    ignore = root / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file():
        for line in ignore.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                patterns.append(stripped)
    return sorted(exclude_paths(root, patterns))


def build_service_image(
    client: docker.DockerClient,
    which: ServiceImage,
    *,
    base: str | None = None,
    offline: bool | None = None,
    ca_bundle: Path | None = None,
    progress: Progress = lambda _l: None,
    root: Path | None = None,
    nocache: bool = False,
) -> str:
    """Build `wheelwright/<which>:<version>` from the checkout at `root`; return the image id.

    `base` is the image to start from; without it `offline` picks one: True, the debootstrap
    base (built when missing); False, `python:3.11-slim`; None, `python:3.11-slim` when present
    or pullable, else the debootstrap base. Always builds (the layer cache makes an unchanged
    rebuild quick); the image the tag named before is removed when no longer used.
    """
    root = root or source_root()
    dockerfile = f"docker/{which}/Dockerfile"
    if not (root / dockerfile).is_file() or not (root / "pyproject.toml").is_file():
        raise ImageError(f"{root} is not a Wheelwright source checkout (no {dockerfile})")
    tag = service_image_tag(which, root)
    ca = resolve_ca_bundle(ca_bundle)
    bottom = cpu_base_image(client, OFFLINE_PYTHON, base, offline, progress)
    proxies = proxy_buildargs()
    # Proxy URLs may hold credentials: name them, never show them.
    progress(f"building {tag} from {dockerfile} (BASE={bottom} {' '.join(proxies)})".rstrip())
    ca_text = ca.read_text(encoding="utf-8") if ca is not None else ""
    with tempfile.TemporaryFile(prefix="wheelwright-context-") as context:
        create_archive(
            str(root), context_files(root), fileobj=context, extra_files=[(CA_IN_CONTEXT, ca_text)]
        )
        image_id = docker_build(
            client,
            tag,
            progress,
            fileobj=context,
            custom_context=True,
            dockerfile=dockerfile,
            buildargs={**proxies, "BASE": bottom},
            nocache=nocache,
        )
    _drop_old_build_stages(client)
    return image_id


def _drop_old_build_stages(client: docker.DockerClient) -> None:
    """Remove the untagged build-stage images of earlier builds; keep the newest, the cache.

    The engine keeps each multi-stage build's first stage (the venv, about 300 MB) as an
    untagged image; every change to the sources would leave one more behind.
    """
    try:
        stages = client.images.list(filters={"dangling": True, "label": STAGE_LABEL})
    except docker.errors.DockerException:
        return
    stages.sort(key=lambda image: str(image.attrs.get("Created", "")), reverse=True)
    for image in stages[1:]:
        with contextlib.suppress(docker.errors.DockerException):  # in use: it stays
            client.images.remove(str(image.id))
