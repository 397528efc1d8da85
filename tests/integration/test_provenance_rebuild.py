"""`wheelwright verify --rebuild` against the service as deployed (API and worker processes, real
Redis and dockerd): the verified provenance's inputs built again with no compiler cache, in a
scratch environment, the bytes compared by the worker and recorded on the original's page."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import docker
import httpx
import pytest
from enginekit import make_sdist, managed_containers
from servicekit import Service

from service.index import JSON_V1
from tests.provenance_kit import make_key

pytestmark = [pytest.mark.docker, pytest.mark.redis]

WHEELWRIGHT = str(Path(sys.executable).parent / "wheelwright")


@pytest.fixture
def service(
    tmp_path: Path, redis_url: str, cpu_image: str, docker_client: docker.DockerClient
) -> Iterator[Service]:
    private, _ = make_key(tmp_path / "keys", "operator")
    svc = Service(
        home=tmp_path / "home",
        redis_url=redis_url,
        build_timeout_s=300,
        extra_env={"WHEELWRIGHT_SIGNING__KEY_FILE": str(private)},
    )
    svc.start_api()
    svc.start_worker("cpu")
    yield svc
    svc.stop()
    assert managed_containers(docker_client, svc.home) == [], "a build container was left behind"


def _published(service: Service, sdist: Path) -> tuple[str, dict[str, object]]:
    """Upload, wait, and return the wheel's index URL and its build record."""
    build_id = service.upload(sdist)["build"]["build"]["id"]
    build = service.wait_for(build_id, lambda b: b["state"] in ("succeeded", "failed"), 300)
    assert build["state"] == "succeeded", build
    artifact = build["artifact"]
    page = f"{service.url}/simple/{artifact['environment']}/{artifact['project']}/"
    entry = httpx.get(page, headers={"Accept": JSON_V1}).json()["files"][0]
    return urljoin(page, entry["url"]), artifact


def _rebuild(service: Service, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WHEELWRIGHT, "verify", url, "--server", service.url, "--rebuild"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_c_extension_rebuilt_is_reproduced(service: Service, tmp_path: Path) -> None:
    url, artifact = _published(service, make_sdist("modern-ext", tmp_path, "modern_ext", "2.0.0"))
    done = _rebuild(service, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"reproduced (sha256 {artifact['sha256']})" in done.stdout
    page = httpx.get(f"{service.url}/ui/wheels/{artifact['environment']}/{artifact['request_key']}")
    assert "Independent rebuilds" in page.text and "reproduced" in page.text
    scratch = httpx.get(f"{service.url}/simple/", headers={"Accept": JSON_V1}).json()
    names = [p["name"] for p in scratch["environments"]]
    assert artifact["environment"] in names and any(n.startswith("rebuild-") for n in names)


def test_a_build_that_embeds_its_time_differs(service: Service, tmp_path: Path) -> None:
    url, artifact = _published(
        service, make_sdist("clock-stamped", tmp_path, "clock_stamped", "1.0")
    )
    done = _rebuild(service, url)
    assert done.returncode == 40, done.stdout + done.stderr
    assert "differs" in done.stdout
    members = ["clock_stamped-1.0.dist-info/RECORD", "clock_stamped/_built.py"]
    assert done.stdout.split("members that differ:")[1].split() == members
    assert f"the rebuild differs: {', '.join(members)}" in done.stderr
    records = httpx.get(
        f"{service.url}/v1/provenance/{artifact['environment']}/{artifact['request_key']}/rebuilds"
    ).json()["rebuilds"]
    assert [(r["result"], r["differing"], r["compiler_cache"]) for r in records] == [
        ("differs", members, False)
    ]
