"""Helpers for compiler cache tests: source archives with one file changed, images with sccache."""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path

import docker

from worker.images import ensure_image, image_tag


def sdist_of(
    folder: Path,
    dest: Path,
    name: str,
    version: str,
    changes: Mapping[str, tuple[str, str]] | None = None,
) -> Path:
    """A `.tar.gz` of `folder` under `<name>-<version>/`, with `changes` ({path: (old, new)})
    made to copies of its files; every member dated 0 like `enginekit.make_sdist`."""
    top = f"{name}-{version}"
    staging = dest / "staging" / top
    shutil.copytree(folder, staging, ignore=shutil.ignore_patterns("__pycache__", "build"))
    for path, (old, new) in (changes or {}).items():
        text = (staging / path).read_text()
        if old not in text:
            raise AssertionError(f"{path} has no {old!r} to change")
        (staging / path).write_text(text.replace(old, new))
    archive = dest / f"{top}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname=top, filter=_reset)
    shutil.rmtree(dest / "staging")
    return archive


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def sccache_image(client: docker.DockerClient, kind: str) -> str:
    """The CPU or CUDA build image of this checkout's Dockerfiles (sccache included): the shared
    tag, which `ensure_image` rebuilds whenever its recipe label differs from docker/."""
    cuda = "13.0" if kind == "cuda" else None
    ensure_image(client, "cuda" if cuda else "cpu", "3.11", cuda)
    return image_tag("cuda" if cuda else "cpu", "3.11", cuda)
