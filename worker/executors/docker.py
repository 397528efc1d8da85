"""The docker executor: every stage in a fresh, hardened container from the build image.

Each stage gets its own container, so it gets its own network policy and a clean process tree.
No container has a network of its own: a stage with the network (the installs) reaches out only
through the worker's egress proxy (`service/egress/`), whose socket is mounted into that stage
alone, so it reaches public addresses and the hosts the operator allows, never this host's. The
containers run as a non-root user with every capability dropped, `no-new-privileges`, a
read-only root filesystem, pids, memory and CPU limits, labels for the reaper, and a deadline
after which they are killed. They never see the Docker socket. Removal happens in `finally`,
whatever went wrong.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.types import DeviceRequest, Mount

from service.config import Settings
from service.egress import EgressPolicy, EgressProxy
from service.errors import BuildFailedError, ExecutorError, ImageError
from service.models import BuildRequest, Target
from service.prepare import build_image
from worker.executors.base import (
    StageContext,
    check_stop,
    read_stage_result,
    stage_environment,
    supervise,
    write_stage_request,
)
from worker.executors.bundle import driver_bundle
from worker.executors.limits import named_limit
from worker.images import ensure_image
from worker.plan import Layout, Machine, StagePlan
from worker.proxy import PROXY_VARS

LABEL = "org.wheelwright.managed"
BUILD_LABEL = "org.wheelwright.build-id"
WORK, CACHE, DRIVER, CA = "/ww/work", "/ww/cache", "/ww/driver", "/ww/ca.pem"
COMPILER_CACHE = "/ww/compiler-cache"  # the project's, writable by the build stage alone
EGRESS = "/ww/egress"  # the egress proxy's folder, in the stages with the network alone
EGRESS_SOCKET = "proxy.sock"
DEFAULT_USER = "1000:1000"
REAP_GRACE_S = 120


def parse_size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    text = text.strip().lower().removesuffix("b")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


@dataclass
class DockerSession:
    """One build's image, mounts and limits; `run` starts one container per stage."""

    client: docker.DockerClient
    image: str
    image_env: Mapping[str, str]
    workspace: Path
    mounts: list[Mount]
    user: str
    build_id: str
    gpus: bool
    layout: Layout
    machine: Machine
    facts: Mapping[str, Any]
    pids_limit: int = 4096
    compiler_cache: Path | None = None
    #: the folder of the build's egress proxy socket (None: no network for any stage)
    egress: Path | None = None
    containers: list[Container] = field(default_factory=list)

    def environment(self, stage: StagePlan[Any]) -> dict[str, str]:
        image_path = self.image_env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        env = stage_environment(stage, self.layout, path=image_path)
        # the worker's own proxies are the egress proxy's way out, not the stage's
        return {k: v for k, v in env.items() if k not in PROXY_VARS}

    def io_dir(self, stage: StagePlan[Any]) -> Path:
        """The stage's own exchange folder: no other stage ever sees it."""
        return self.workspace / "io" / stage.name

    def mounts_for(self, stage: StagePlan[Any]) -> list[Mount]:
        """The plan's mounts of the stage: the shared cache only where it may be written, the
        runtime snapshot read-only where the plan says, the compiler cache where the plan asks
        for it; each stage gets its own io folder."""
        mounts = list(self.mounts)
        if stage.cache != "shared":
            mounts = [m for m in mounts if m["Target"] != CACHE]
        if stage.snapshot_read_only:
            snapshot = str(self.workspace / "runtime")
            mounts.append(Mount(self.layout.snapshot, snapshot, type="bind", read_only=True))
        if stage.compiler_cache and self.compiler_cache is not None:
            mounts.append(Mount(COMPILER_CACHE, str(self.compiler_cache), type="bind"))
        if stage.network and self.egress is not None:
            mounts.append(Mount(EGRESS, str(self.egress), type="bind", read_only=True))
        mounts.append(Mount(self.layout.io, str(self.io_dir(stage)), type="bind"))
        return mounts

    def run(self, stage: StagePlan[Any], ctx: StageContext) -> dict[str, Any]:
        io = self.io_dir(stage)
        shutil.rmtree(io, ignore_errors=True)
        io.mkdir(parents=True)
        if ":" in self.user:
            uid, gid = (int(x) for x in self.user.split(":", 1))
            if os.getuid() == 0:
                os.chown(io, uid, gid)
        network = stage.network and self.egress is not None
        write_stage_request(io, stage, {"egress": f"{EGRESS}/{EGRESS_SOCKET}"} if network else {})
        check_stop(stage, ctx)
        container = self.client.containers.create(
            self.image,
            command=stage.argv(self.layout),
            user=self.user,
            environment=self.environment(stage),
            working_dir=WORK,
            mounts=self.mounts_for(stage),
            network_mode="none",  # the network, where a stage has it, is the egress proxy
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": "rw,exec,size=1g"},
            pids_limit=self.pids_limit,
            mem_limit=self.machine.memory_bytes,
            nano_cpus=self.machine.cpus * 1_000_000_000,
            device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])] if self.gpus else [],
            labels={
                LABEL: "1",
                BUILD_LABEL: self.build_id,
                "org.wheelwright.stage": stage.name,
                "org.wheelwright.deadline": str(int(time.time() + ctx.remaining())),
            },
        )
        self.containers.append(container)
        try:
            container.start()
            code = supervise(
                stage,
                ctx,
                output=_output(container),
                wait=partial(_wait, container),
                kill=partial(_kill, container),
                what="container",
            )
            oom_killed = _oom_killed(container)
        finally:
            _remove(container)
            self.containers.remove(container)
        try:
            return read_stage_result(io, stage, code, ctx)
        except BuildFailedError as exc:
            limit = named_limit(
                oom_killed, ctx.log_tail(), self.machine.memory_bytes, self.pids_limit
            )
            if limit is None:
                raise
            cause = f"{limit} ({exc.cause})"
            raise BuildFailedError(stage.name, cause, exc.log_tail, kind="limit") from None


def _oom_killed(container: Container) -> bool:
    try:
        container.reload()
    except docker.errors.APIError:
        return False
    return bool((container.attrs.get("State") or {}).get("OOMKilled"))


def _wait(container: Container, seconds: float) -> int | None:
    try:
        status = container.wait(timeout=seconds)
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        return None
    return int(status.get("StatusCode", -1))


def _output(container: Container) -> Iterator[bytes]:
    """The container's output until it ends (or the engine stops answering)."""
    try:
        yield from container.logs(stream=True, follow=True)
    except (docker.errors.APIError, requests.exceptions.RequestException):
        return


def _kill(container: Container) -> None:
    with suppress(docker.errors.APIError):  # already gone
        container.kill()


def _remove(container: Container) -> None:
    with suppress(docker.errors.NotFound):
        container.remove(force=True)


class DockerExecutor:
    """Builds in containers of `wheelwright/build-*` images (made on first use)."""

    name = "docker"
    compiler_cache = True  # builds can see a compiler cache at a fixed path

    def __init__(self, settings: Settings, client_factory: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self._client_factory = client_factory or docker.from_env
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = self._client_factory()
                self._client.ping()
            except docker.errors.DockerException as exc:
                raise ExecutorError(
                    f"cannot reach the Docker engine ({exc}); start it (scripts/host-services.sh)"
                    " or use WHEELWRIGHT_EXECUTOR=host"
                ) from None
        return self._client

    def _image(self, target: Target, progress: Callable[[str], None]) -> str:
        if target.image:
            try:
                return str(self.client.images.get(target.image).id)
            except docker.errors.ImageNotFound:
                raise ImageError(f"image {target.image!r} is not on this Docker engine") from None
        base = self.settings.docker.cuda_base if target.kind == "cuda" else None
        return ensure_image(
            self.client,
            target.kind,
            target.python,
            target.cuda,
            base=base or self.settings.docker.cpu_base,
            offline=self.settings.docker.offline_base,
            ca_bundle=self.settings.ca_bundle,
            progress=progress,
        )

    def _machine(self) -> Machine:
        info = self.client.info()
        cpus = int(self.settings.docker.cpus or info.get("NCPU") or os.cpu_count() or 1)
        memory = min(parse_size(self.settings.docker.memory), int(info.get("MemTotal") or 2**40))
        return Machine(cpus=max(1, cpus), memory_bytes=memory)

    def _gpus(self) -> bool:
        mode = self.settings.docker.gpus
        if mode == "auto":
            return "nvidia" in (self.client.info().get("Runtimes") or {})
        return mode == "all"

    def _user(self, workspace: Path, cache: Path, compiler_cache: Path | None = None) -> str:
        if self.settings.docker.user:
            return self.settings.docker.user
        if os.getuid() != 0:
            return f"{os.getuid()}:{os.getgid()}"
        uid, gid = (int(x) for x in DEFAULT_USER.split(":"))
        cached = [compiler_cache, *compiler_cache.rglob("*")] if compiler_cache else []
        for path in (workspace, *workspace.rglob("*"), cache, *cached):
            os.lchown(path, uid, gid)
        return DEFAULT_USER

    @contextmanager
    def session(
        self,
        request: BuildRequest,
        workspace: Path,
        progress: Callable[[str], None],
        *,
        compiler_cache: Path | None = None,
    ) -> Iterator[DockerSession]:
        self.reap()
        image_id = self._image(request.target, progress)
        attrs = self.client.images.get(image_id).attrs
        image_env = dict(
            item.split("=", 1) for item in (attrs.get("Config") or {}).get("Env") or ()
        )
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        cache = self.settings.cache_dir / "docker"
        for sub in ("home", "tmp", "io", "out", "runtime"):
            (workspace / sub).mkdir(parents=True, exist_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        user = self._user(workspace, cache, compiler_cache)
        # beside the workspace, not in it: only the stages with the network see the socket
        egress = workspace.parent / f"{workspace.name}.egress"
        shutil.rmtree(egress, ignore_errors=True)
        egress.mkdir(mode=0o755)
        bundle = driver_bundle(self.settings.home / "driver")
        mounts = [
            Mount(WORK, str(workspace), type="bind"),
            Mount(CACHE, str(cache), type="bind"),
            Mount(DRIVER, str(bundle), type="bind", read_only=True),
        ]
        ca = self.settings.ca_bundle is not None
        if self.settings.ca_bundle is not None:
            mounts.append(
                Mount(CA, str(self.settings.ca_bundle.resolve()), type="bind", read_only=True)
            )
        find_links: list[str] = []
        for i, location in enumerate(request.index.find_links):
            if Path(location).is_dir():
                target = f"/ww/find-links/{i}"
                mounts.append(
                    Mount(target, str(Path(location).resolve()), type="bind", read_only=True)
                )
                find_links.append(target)
            else:
                find_links.append(location)
        seen_cache = COMPILER_CACHE if compiler_cache is not None else None
        links = tuple(find_links)
        layout = Layout(
            WORK,
            DRIVER,
            "python3",
            "uv",
            find_links=links,
            compiler_cache=seen_cache,
            shared_cache=CACHE,
            ca=CA if ca else None,
        )
        session = DockerSession(
            client=self.client,
            image=image_id,
            image_env=image_env,
            workspace=workspace,
            mounts=mounts,
            user=user,
            build_id=workspace.name,
            gpus=self._gpus(),
            layout=layout,
            machine=self._machine(),
            facts={
                "executor": self.name,
                "image": build_image(request.target, self.settings, self.name),
                "image_id": image_id,
                "image_python": labels.get("org.wheelwright.python", ""),
                "docker_version": str(self.client.version().get("Version", "")),
            },
            pids_limit=self.settings.docker.pids_limit,
            compiler_cache=compiler_cache,
            egress=egress,
        )
        proxy = EgressProxy(
            egress / EGRESS_SOCKET,
            EgressPolicy.from_settings(self.settings),
            on_refused=lambda why: progress(f"egress refused: {why}"),
        )
        try:
            proxy.start()
            yield session
        finally:
            for container in list(session.containers):
                _remove(container)
            proxy.close()
            shutil.rmtree(egress, ignore_errors=True)

    def reap(self, build_id: str | None = None) -> int:
        """Remove managed containers past their deadline, or exited a while ago.

        A worker removes its own containers in `finally`; these are what a killed worker left.
        """
        now = time.time()
        removed = 0
        labels = [LABEL] + ([f"{BUILD_LABEL}={build_id}"] if build_id else [])
        # a container removed between the listing and its inspection (its own worker's
        # `finally`, another reaper) is gone already: not an error
        listed = self.client.containers.list(
            all=True, filters={"label": labels}, ignore_removed=True
        )
        for container in listed:
            deadline = float(container.labels.get("org.wheelwright.deadline", "0") or 0)
            if build_id or deadline < now or _exited_before(container, now - REAP_GRACE_S):
                _remove(container)
                removed += 1
        return removed


def _exited_before(container: Container, moment: float) -> bool:
    if container.status not in ("exited", "dead"):
        return False
    finished = str(container.attrs.get("State", {}).get("FinishedAt", ""))[:19]
    try:
        stamp = datetime.fromisoformat(finished).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return True
    return stamp < moment
