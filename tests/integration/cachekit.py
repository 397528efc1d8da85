"""Helpers for compiler cache tests: source archives with one file changed, images with sccache."""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path

import docker

from worker.images import _build, cpu_base_image, resolve_ca_bundle

#: Tags of the build images as this checkout's docker/ folder makes them (sccache included),
#: apart from the shared tags so that images built from other checkouts never replace them.
CPU_TAG = "wheelwright/build-cpu:py3.11-sccache"
CUDA_TAG = "wheelwright/build-cuda:cu13.0-py3.11-sccache"


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
    """The CPU or CUDA build image of this checkout's Dockerfiles, under its own tag, built each
    session (Docker's layer cache makes that seconds when nothing changed)."""
    ca = resolve_ca_bundle(None)
    base = cpu_base_image(client, "3.11", None, None, lambda _line: None)  # as ensure_image
    cpu_args = {"BASE": base, "PYTHON": "3.11"}
    _build(client, "build-cpu", CPU_TAG, cpu_args, ca=ca, progress=lambda _line: None)
    if kind == "cpu":
        return CPU_TAG
    args = {"BASE": CPU_TAG, "CUDA": "13.0"}
    _build(client, "build-cuda", CUDA_TAG, args, ca=ca, progress=lambda _line: None)
    return CUDA_TAG
