"""Every mount of every stage container, as Docker reports it, against an allow-list: which
host paths, where, read-only or not, for which stage. Nothing else of the host reaches a build."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from enginekit import make_sdist, managed_containers, request_for

from service.config import Settings, load_settings
from service.store import LocalStore
from worker.executors.docker import DockerExecutor
from worker.pipeline import build_and_publish

pytestmark = pytest.mark.docker
STAGES = ("runtime", "build_deps", "requires", "requires_install", "build", "verify")
PACKAGE_CODE_STAGES = ("requires", "build", "verify")  # the package's own code runs here
NETWORK_STAGES = ("runtime", "build_deps", "requires_install")  # installs, through the proxy


@dataclass(frozen=True)
class Allowed:
    """One allowed mount: where in the container, from which host path, writable or not."""

    destination: str
    source: Path
    writable: bool
    stages: tuple[str, ...] = STAGES
    below: bool = False  # the source is a folder below `source` (a versioned bundle)

    def matches(self, source: str) -> bool:
        expected = Path(os.path.realpath(self.source))
        return Path(source).parent == expected if self.below else Path(source) == expected


class RecordingContainers:
    """`client.containers`, inspecting every container it creates (what Docker made of it)."""

    def __init__(self, client: docker.DockerClient, seen: list[dict[str, Any]]) -> None:
        self._client, self._seen = client, seen

    def create(self, *args: Any, **kwargs: Any) -> Any:
        container = self._client.containers.create(*args, **kwargs)
        self._seen.append(self._client.api.inspect_container(container.id))
        return container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.containers, name)


class RecordingClient:
    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        self.seen: list[dict[str, Any]] = []
        self.containers = RecordingContainers(client, self.seen)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def allow_list(settings: Settings, build_id: str, wheels: Path) -> list[Allowed]:
    work = settings.work_dir / build_id
    allowed = [
        Allowed("/ww/work", work, writable=True),
        Allowed("/ww/driver", settings.home / "driver", writable=False, below=True),
        Allowed("/ww/cache", settings.cache_dir / "docker", writable=True, stages=("runtime",)),
        Allowed(
            "/ww/work/runtime",
            work / "runtime",
            writable=False,
            stages=("build_deps", "requires", "requires_install", "build"),
        ),
        Allowed("/ww/find-links/0", wheels, writable=False),
        *(Allowed("/ww/work/io", work / "io" / stage, True, (stage,)) for stage in STAGES),
        # the project's compiler cache (brought from the store): writable, by the build alone
        Allowed("/ww/compiler-cache", settings.work_dir / f"{build_id}.ccache", True, ("build",)),
        # the worker's egress proxy: the only way out, for the stages with the network alone
        Allowed("/ww/egress", settings.work_dir / f"{build_id}.egress", False, NETWORK_STAGES),
    ]
    if settings.ca_bundle is not None:
        allowed.append(Allowed("/ww/ca.pem", settings.ca_bundle.resolve(), writable=False))
    return allowed


def test_every_stage_mount_is_on_the_allow_list(
    tmp_path: Path, cpu_image: str, docker_client: docker.DockerClient
) -> None:
    wheels = tmp_path / "operator-wheels"
    wheels.mkdir()
    settings = load_settings(
        home=tmp_path / "home", sources={"find_links": [str(wheels)]}, keep_workspace=False
    )
    client = RecordingClient(docker.from_env())
    executor = DockerExecutor(settings, client_factory=lambda: client)
    sdist = make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0")
    request = request_for(sdist, index={"find_links": [str(wheels)]})
    outcome = build_and_publish(request, settings, LocalStore(tmp_path / "store"), executor)
    assert outcome.build_id is not None
    cache = outcome.artifact.manifest["compiler_cache"]
    assert (cache["enabled"], cache["scope"].partition("#")[0]) == (
        True,
        "upload:modern-ext@anonymous",
    )  # one project's

    by_stage = {c["Config"]["Labels"]["org.wheelwright.stage"]: c for c in client.seen}
    assert sorted(by_stage) == sorted(STAGES)
    allowed = allow_list(settings, outcome.build_id, wheels)
    for stage, container in by_stage.items():
        mounts = container["Mounts"]
        for mount in mounts:
            where = f"stage {stage}: {mount['Source']} -> {mount['Destination']}"
            assert mount["Type"] == "bind", where
            rule = next(
                (a for a in allowed if a.destination == mount["Destination"] and stage in a.stages),
                None,
            )
            assert rule is not None, f"{where} is not on the allow-list"
            assert rule.matches(mount["Source"]), where
            assert mount["RW"] is rule.writable, f"{where} RW={mount['RW']}"
        destinations = {m["Destination"] for m in mounts}
        required = {a.destination for a in allowed if stage in a.stages}
        assert destinations == required, f"stage {stage} mounts {sorted(destinations)}"
        host = container["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in (host["SecurityOpt"] or [])
        assert host["PidsLimit"] == settings.docker.pids_limit
        assert not host.get("Privileged")
        assert not any("docker.sock" in m["Source"] for m in mounts)
        if "/ww/compiler-cache" in destinations:  # never the shared package cache
            compiler = next(m for m in mounts if m["Destination"] == "/ww/compiler-cache")
            assert not Path(compiler["Source"]).is_relative_to(settings.cache_dir), where
        # no stage has a network of its own; the installs reach out through the egress proxy
        assert host["NetworkMode"] == "none", f"{stage} has a network of its own"
        if stage in PACKAGE_CODE_STAGES:
            assert "/ww/cache" not in destinations, f"{stage} runs package code"
            assert "/ww/egress" not in destinations, f"{stage} runs package code offline"
    assert managed_containers(docker_client, settings.home) == []
