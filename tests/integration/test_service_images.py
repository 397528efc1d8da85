"""The service images (docker/api, docker/worker), built from the offline base and run for real.

The API container runs the way the Helm chart runs it: uid 10001, a read-only root filesystem
with a tmpfs /tmp, every capability dropped, a local store. The worker container reaches the
Docker engine through its socket as uid 10001 (the chart's `docker.engine: host` mode).

The worker container also joins its Celery queue on the fixture Redis and leaves it cleanly on
SIGTERM (what a Kubernetes rollout sends). Running a build from the container is the service
tests' part: there the worker runs in the test process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from celery import Celery
from docker.models.containers import Container

from worker.service_images import (
    STAGE_LABEL,
    build_service_image,
    context_files,
    service_image_tag,
    source_root,
)

_log = logging.getLogger("wheelwright.tests.service_images")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_SECOND_NS = 1_000_000_000
ALL_INTERFACES = "0.0.0.0"  # noqa: S104  (where the API listens inside its container)


def test_build_context_holds_only_what_the_images_install() -> None:
    files = context_files(source_root())
    for needed in ("pyproject.toml", "README.md", "service/__init__.py", "worker/__init__.py"):
        assert needed in files
    for needed in ("docker/api/Dockerfile", "docker/worker/Dockerfile"):
        assert needed in files
    for needed in ("docker/service/provision.sh", "docker/build-cpu/Dockerfile"):
        assert needed in files
    leaked = [f for f in files if f.split("/")[0] in {".venv", ".git", "tests", "helm", "bench"}]
    assert leaked == []
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


def test_service_image_tag_is_the_project_version() -> None:
    assert service_image_tag("api") == "wheelwright/api:0.1.0"
    assert service_image_tag("worker") == "wheelwright/worker:0.1.0"


@pytest.fixture(scope="module")
def api_image(docker_client: docker.DockerClient) -> str:
    return build_service_image(docker_client, "api", offline=True, progress=_log.info)


@pytest.fixture(scope="module")
def worker_image(docker_client: docker.DockerClient) -> str:
    return build_service_image(docker_client, "worker", offline=True, progress=_log.info)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _logs(container: Container) -> str:
    try:
        return bytes(container.logs()).decode(errors="replace")[-4000:]
    except docker.errors.DockerException as exc:
        return f"(no logs: {exc})"


@pytest.fixture
def started() -> Iterator[list[Container]]:
    """Containers a test starts; removed in `finally`, whatever happened."""
    containers: list[Container] = []
    try:
        yield containers
    finally:
        for container in containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def _wait_for_healthz(container: Container, url: str, deadline_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            pytest.fail(f"the API container stopped:\n{_logs(container)}", pytrace=False)
        try:
            with _NO_PROXY.open(url, timeout=2) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("application/json")
                body: dict[str, Any] = json.loads(response.read())
                return body
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = str(exc)
        time.sleep(0.5)
    pytest.fail(f"no answer from {url} ({last}):\n{_logs(container)}", pytrace=False)


@pytest.mark.docker
def test_api_image_metadata(docker_client: docker.DockerClient, api_image: str) -> None:
    config = docker_client.images.get(api_image).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["wheelwright"]
    assert config["Cmd"] == ["serve", "--host", ALL_INTERFACES, "--port", "8000"]
    assert "8000/tcp" in config["ExposedPorts"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert config["Labels"]["org.wheelwright.kind"] == "api"
    assert config["Labels"]["org.wheelwright.base"] == "wheelwright/base:bookworm"


@pytest.mark.docker
def test_api_container_answers_healthz(
    docker_client: docker.DockerClient, api_image: str, started: list[Container]
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    image_check = docker_client.images.get(api_image).attrs["Config"]["Healthcheck"]["Test"]
    container = docker_client.containers.run(
        api_image,
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        detach=True,
        network_mode="host",
        read_only=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        environment={
            "WHEELWRIGHT_STORE__BACKEND": "local",
            "WHEELWRIGHT_HOME": "/tmp/wheelwright",
            "HEALTHCHECK_URL": url,
        },
        # The image's own check, asked every second instead of every 30 s.
        healthcheck={
            "test": image_check,
            "interval": _SECOND_NS,
            "timeout": 5 * _SECOND_NS,
            "retries": 30,
            "start_period": 0,
        },
        labels={"org.wheelwright.test": "service-images"},
    )
    started.append(container)
    assert _wait_for_healthz(container, url, deadline_s=60) == {"status": "ok"}

    deadline = time.monotonic() + 30
    health = ""
    while time.monotonic() < deadline:
        container.reload()
        health = container.attrs["State"].get("Health", {}).get("Status", "")
        if health == "healthy":
            break
        time.sleep(0.5)
    assert health == "healthy", container.attrs["State"].get("Health")

    code, out = container.exec_run(["id", "-u"])
    assert isinstance(out, bytes)
    assert (code, out.decode().strip()) == (0, "10001")


@pytest.mark.docker
def test_worker_image_reaches_the_engine_as_non_root(
    docker_client: docker.DockerClient, worker_image: str
) -> None:
    config = docker_client.images.get(worker_image).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["wheelwright"]
    assert config["Cmd"] == ["worker", "--queues", "cpu"]

    socket_path = _socket()
    script = r"""
set -eu
echo "uid=$(id -u)"
echo "git=$(git --version)"
command -v docker >/dev/null && echo "docker_cli=yes" || echo "docker_cli=no"
python - <<'PY'
import docker
from worker.images import docker_dir
client = docker.from_env()
print("ping=%s" % client.ping())
print("engine=%s" % client.version()["Version"])
print("dockerfiles=%s" % sorted(p.name for p in docker_dir().iterdir()))
print("cpu_dockerfile=%s" % (docker_dir() / "build-cpu" / "Dockerfile").is_file())
PY
"""
    out = docker_client.containers.run(
        worker_image,
        ["-c", script],
        entrypoint=["bash"],
        remove=True,
        network_mode="none",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        group_add=[str(socket_path.stat().st_gid)],
        volumes={str(socket_path): {"bind": "/var/run/docker.sock", "mode": "rw"}},
        environment={"DOCKER_HOST": "unix:///var/run/docker.sock"},
    )
    assert isinstance(out, bytes)
    got = dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
    assert got["uid"] == "10001"
    assert got["git"].startswith("git version")
    assert got["docker_cli"] == "no"
    assert got["ping"] == "True"
    assert got["engine"] == docker_client.version()["Version"]
    assert got["dockerfiles"] == "['base', 'build-cpu', 'build-cuda']"
    assert got["cpu_dockerfile"] == "True"


def _socket() -> Path:
    host = os.environ.get("DOCKER_HOST", "")
    assert not host or host.startswith("unix://"), (
        f"these tests mount the socket; DOCKER_HOST={host}"
    )
    return Path(host.removeprefix("unix://")) if host else Path("/var/run/docker.sock")


@pytest.mark.docker
@pytest.mark.redis
def test_worker_container_joins_its_queue_and_stops_on_sigterm(
    docker_client: docker.DockerClient,
    worker_image: str,
    redis_url: str,
    started: list[Container],
) -> None:
    socket_path = _socket()
    container = docker_client.containers.run(
        worker_image,
        ["worker", "--queues", "cpu"],
        detach=True,
        network_mode="host",
        read_only=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        group_add=[str(socket_path.stat().st_gid)],
        volumes={str(socket_path): {"bind": "/var/run/docker.sock", "mode": "rw"}},
        environment={
            "WHEELWRIGHT_BROKER_URL": redis_url,
            "WHEELWRIGHT_STORE__BACKEND": "local",
            "WHEELWRIGHT_HOME": "/tmp/wheelwright",
            "DOCKER_HOST": "unix:///var/run/docker.sock",
        },
        labels={"org.wheelwright.test": "service-images"},
    )
    started.append(container)
    client = Celery("probe", broker=redis_url)
    try:
        deadline = time.monotonic() + 60
        queues: dict[str, Any] | None = None
        while time.monotonic() < deadline and not queues:
            container.reload()
            if container.status in ("exited", "dead"):
                pytest.fail(f"the worker container stopped:\n{_logs(container)}", pytrace=False)
            queues = client.control.inspect(timeout=1.0).active_queues()
        assert queues, f"no worker answered on {redis_url}:\n{_logs(container)}"
        ((name, consumed),) = queues.items()
        assert [queue["name"] for queue in consumed] == ["cpu"], name
    finally:
        client.close()
    container.stop(timeout=30)  # SIGTERM: Celery's warm shutdown
    assert container.wait(timeout=10)["StatusCode"] == 0, _logs(container)


#: Run inside each service image as its own user, with no network: the worker's git checks a
#: repository out, and the ssh of its submodule, whose URL is this container's loopback, goes
#: through the egress proxy, which refuses it before anything connects.
GIT_IN_IMAGE = r"""
import socket, subprocess
from pathlib import Path
from service.egress import EgressPolicy
from service.errors import FetchError
from worker.git import Git

def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True)

listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
listener.settimeout(0.5)
inner, repo = Path("/tmp/inner"), Path("/tmp/repo")
for path in (inner, repo):
    path.mkdir()
    git("init", "-q", "-b", "main", cwd=path)
    (path / "setup.py").write_text("print('hi')\n")
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "x", cwd=path)
head = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=inner, text=True).strip()
git("update-index", "--add", "--cacheinfo", f"160000,{head},sub", cwd=repo)
(repo / ".gitmodules").write_text(
    f'[submodule "sub"]\n\tpath = sub\n\turl = ssh://git@127.0.0.1:{port}/a/sub.git\n'
)
git("add", ".gitmodules", cwd=repo)
git("commit", "-q", "-m", "sub", cwd=repo)
commit = Git(allow_file=True).resolve_ref("file:///tmp/repo", "main")
guarded = Git(allow_file=True, egress=EgressPolicy())
try:
    guarded.checkout("file:///tmp/repo", commit, Path("/tmp/out"))
except FetchError as exc:
    print("refused:", exc)
assert Path("/tmp/out/setup.py").is_file(), "the project was not checked out"
try:
    listener.accept()
    print("the submodule's host was reached")
except TimeoutError:
    print("never reached")
"""


@pytest.mark.docker
@pytest.mark.parametrize("kind", ["api", "worker"])
def test_each_service_image_checks_out_git_and_tunnels_ssh(
    docker_client: docker.DockerClient, api_image: str, worker_image: str, kind: str
) -> None:
    """The API checks a project out (a project build from git, a webhook's) and the worker a
    git source: both images carry git and ssh, and the worker's git runs there as it does here."""
    image = api_image if kind == "api" else worker_image
    output = docker_client.containers.run(
        image,
        entrypoint=["/opt/wheelwright/bin/python", "-c", GIT_IN_IMAGE],
        network_mode="none",
        remove=True,
        stdout=True,
        stderr=True,
    ).decode()
    assert "refused: git submodule failed: egress refused: 127.0.0.1 is 127.0.0.1" in output
    assert "never reached" in output, output


@pytest.mark.docker
def test_builds_keep_only_the_newest_build_stage(
    docker_client: docker.DockerClient, api_image: str, worker_image: str
) -> None:
    assert api_image != worker_image
    stages = docker_client.images.list(filters={"dangling": True, "label": STAGE_LABEL})
    assert len(stages) <= 1, [image.id for image in stages]
