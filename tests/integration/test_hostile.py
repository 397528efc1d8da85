"""Hostile requests and packages, one per class of issue 8, through the real CLI and the real
API (`wheelwright serve` and `wheelwright worker` processes, real Redis, real dockerd): each is
refused or contained with a clear error, nothing is published, no container is left, and the
service still answers.

1. command execution: git URLs git would read as options or command transports
2. host files: find-links naming host folders
3. cache poisoning: a package that writes into the shared cache and the runtime snapshot
4. index poisoning: an sdist asked for as `helper` that builds `numpy 99.0`
5. jamming: oversized bodies with and without a token, a corrupt upload, an endless line and a
   log flood, the pids and memory limits, a build no worker runs (`submit --wait` gives up)
6. the reader's terminal (issue 17): a build printing an OSC 52 clipboard write, a window title,
   cursor-up/erase-line and C1 controls reaches `submit --wait`, `build`'s failure tail, the log
   endpoint and the stored log as visible text (`^[`), never as control characters
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from enginekit import managed_containers
from hostilekit import hostile_sdist
from servicekit import Service

pytestmark = [pytest.mark.docker, pytest.mark.redis]
WHEELWRIGHT = str(Path(sys.executable).with_name("wheelwright"))
TOKEN = "hostile-test-token-8c1f2e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY_LIMIT = 256 * 1024
LOG_CAP = 1024 * 1024


@pytest.fixture
def service(
    tmp_path: Path, redis_url: str, cpu_image: str, docker_client: docker.DockerClient
) -> Iterator[Service]:
    tokens = [{"name": "ci", "token": TOKEN, "scopes": ["admin"]}]
    svc = Service(
        home=tmp_path / "home",
        redis_url=redis_url,
        build_timeout_s=300,
        extra_env={
            "WHEELWRIGHT_AUTH__TOKENS": json.dumps(tokens),
            "WHEELWRIGHT_LIMITS__MAX_BODY_BYTES": str(BODY_LIMIT),
            "WHEELWRIGHT_LIMITS__MAX_LOG_BYTES": str(LOG_CAP),
            "WHEELWRIGHT_LIMITS__MAX_LOG_LINE_CHARS": "4096",
            "WHEELWRIGHT_DOCKER__PIDS_LIMIT": "64",
            "WHEELWRIGHT_DOCKER__MEMORY": "384m",
        },
    )
    svc.start_api()
    yield svc
    svc.stop()
    assert managed_containers(docker_client, svc.home) == [], "a build container was left behind"


def submit(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WHEELWRIGHT, "submit", *args, "--server", service.url, "--token", TOKEN],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=service.env(),
    )


def post(service: Service, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{service.url}/v1/builds", json=body, headers=AUTH, timeout=30)


def builds(service: Service) -> list[dict[str, Any]]:
    answer = httpx.get(f"{service.url}/v1/builds", headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return [view["build"] for view in answer.json()]


def stored_log(service: Service, build_id: str) -> str:
    answer = httpx.get(f"{service.url}/v1/builds/{build_id}/log", headers=AUTH, timeout=30)
    assert answer.status_code == 200
    return answer.text


def published_wheels(service: Service) -> list[str]:
    return sorted(p.name for p in (service.home / "store").rglob("*.whl"))


def still_answering(service: Service) -> None:
    assert httpx.get(f"{service.url}/healthz", timeout=10).status_code == 200


def test_1_commands_through_git_urls_are_refused(service: Service, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for url in (
        f"--upload-pack=touch {marker}",
        "--upload-pack=id",
        f"ext::sh -c touch% {marker}",
        "ext::sh",
        "fd::7",
        "ssh://-oProxyCommand=id/x",
    ):
        answer = post(service, {"source": {"kind": "git", "url": url}})
        assert answer.status_code == 422, (url, answer.text)
        assert "git URL" in answer.text, answer.text
    refs = post(service, {"source": {"kind": "git", "url": "https://x.org/a", "ref": "--exec=id"}})
    assert refs.status_code == 422 and "not a plain branch or tag name" in refs.text
    local = post(service, {"source": {"kind": "git", "url": f"file://{tmp_path}"}})
    assert local.status_code == 422 and "file:// sources are not allowed" in local.text

    cli = submit(service, f"git+--upload-pack=touch {marker}@main")
    assert cli.returncode == 2, cli.stderr
    assert "starts with '-'" in cli.stderr or "whitespace" in cli.stderr
    assert not marker.exists()
    assert builds(service) == []  # nothing was queued
    still_answering(service)


def test_2_host_folders_as_find_links_are_refused(service: Service) -> None:
    for folder in ("/", "/etc", str(service.home), str(service.home / "..")):
        answer = post(
            service,
            {
                "source": {"kind": "requirement", "requirement": "six==1.16.0"},
                "index": {"find_links": [folder]},
            },
        )
        assert answer.status_code == 422, answer.text
        assert "not an allowed folder on this service" in answer.text or "find-links" in answer.text
    assert builds(service) == []
    still_answering(service)


def test_3_cache_and_snapshot_poisoning_is_contained(service: Service, tmp_path: Path) -> None:
    service.start_worker("cpu")
    sdist = hostile_sdist(tmp_path, ["cache", "snapshot", "host", f"leak:{TOKEN}"])
    done = submit(service, str(sdist), "--wait")
    assert done.returncode == 0, done.stderr
    (build,) = builds(service)
    assert build["state"] == "succeeded"
    log = stored_log(service, build["id"])
    for what in ("shared cache", "shared cache root", "runtime snapshot", "runtime snapshot file"):
        assert f"probe {what}: refused" in log, what
    assert "probe host root: refused" in log
    assert "probe docker socket: refused" in log
    assert "WORKED" not in log
    assert "leaking ***" in log and TOKEN not in log  # the secret never reaches a stored log
    assert TOKEN not in done.stderr
    assert list((service.home / "cache").rglob("POISON")) == []
    assert published_wheels(service) == ["helper-1.0-py3-none-any.whl"]
    still_answering(service)


def test_4_a_wheel_that_is_not_the_request_is_not_published(
    service: Service, tmp_path: Path
) -> None:
    service.start_worker("cpu")
    sdist = hostile_sdist(tmp_path, [], name="numpy", version="99.0", filename="helper-1.0.tar.gz")
    done = submit(service, str(sdist), "--wait")
    assert done.returncode == 10, done.stderr
    assert "stage publish" in done.stderr
    assert "the wheel is for project 'numpy', but the sdist's file name is 'helper'" in done.stderr
    (build,) = builds(service)
    assert build["state"] == "failed" and build["error_stage"] == "publish"
    assert published_wheels(service) == []
    assert list((service.home / "store").rglob("builds/*/*.json")) == []
    index = httpx.get(f"{service.url}/simple/{build['environment']}/numpy/", timeout=10)
    assert index.status_code == 404
    still_answering(service)


def test_5_jamming_is_bounded(service: Service, tmp_path: Path) -> None:
    oversized = b"{" + b" " * (2 * BODY_LIMIT) + b"}"
    anonymous = httpx.post(f"{service.url}/v1/builds", content=oversized, timeout=30)
    assert anonymous.status_code == 401
    with_token = httpx.post(f"{service.url}/v1/builds", content=oversized, headers=AUTH)
    assert with_token.status_code == 413
    assert f"limit of {BODY_LIMIT} bytes" in with_token.json()["detail"]
    corrupt = tmp_path / "broken-1.0.zip"
    corrupt.write_bytes(b"PK\x03\x04" + b"\xff" * 4000)
    refused = submit(service, str(corrupt))
    assert refused.returncode == 2, refused.stderr  # the server's 422
    assert "broken-1.0.zip is not a readable archive" in refused.stderr
    assert builds(service) == []

    service.start_worker("cpu")
    flood = hostile_sdist(tmp_path / "flood", ["long_line:300000", "flood:3000"])
    done = submit(service, str(flood), "--wait")
    assert done.returncode == 0, done.stderr
    log = stored_log(service, builds(service)[0]["id"])
    assert "[... line cut: " in log
    assert f"[... log capped at {LOG_CAP} bytes:" in log
    assert len(log.encode()) < LOG_CAP + 64 * 1024

    threads = hostile_sdist(tmp_path / "threads", ["threads"], name="forky")
    failed = submit(service, str(threads), "--wait")
    assert failed.returncode == 10, failed.stderr
    assert "hit the process limit (pids_limit 64" in failed.stderr

    memory = hostile_sdist(tmp_path / "memory", ["memory"], name="hungry")
    failed = submit(service, str(memory), "--wait")
    assert failed.returncode == 10, failed.stderr
    assert "hit the memory limit" in failed.stderr
    assert published_wheels(service) == ["helper-1.0-py3-none-any.whl"]
    still_answering(service)


def test_5_submit_wait_gives_up_on_a_build_nobody_runs(service: Service, tmp_path: Path) -> None:
    sdist = hostile_sdist(tmp_path, [])
    done = submit(service, str(sdist), "--wait", "--timeout", "10", "--wait-margin", "2")
    assert done.returncode == 29, done.stderr
    assert "gave up waiting after 12 s (the build's deadline plus 2 s)" in done.stderr
    (build,) = builds(service)
    cancelled = httpx.post(f"{service.url}/v1/builds/{build['id']}/cancel", headers=AUTH)
    assert cancelled.json()["build"]["state"] == "cancelled"
    still_answering(service)


#: what no reader of a build's output may be sent: C0 controls but tab and newline, DEL, C1
RAW_CONTROLS = [chr(c) for c in (*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))]
SHOWN = (
    "^[]52;c;cHduZWQ=^G^[]0;owned title^Gprogress 10%",  # OSC 52, the title: visible text
    "progress 100%",  # the redraw after a carriage return: a line of its own
    "hidden below^[[1A^[[2K",  # cursor up, erase line
    "c1 <U+009B>31m red ^?",
)


def _shows_no_control(text: str, where: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in text if c in RAW_CONTROLS})
    assert found == [], f"{where} passes {found} through"
    for line in SHOWN:
        assert line in text, f"{where} lacks {line!r}"


def test_6_build_output_cannot_steer_the_readers_terminal(service: Service, tmp_path: Path) -> None:
    service.start_worker("cpu")
    sdist = hostile_sdist(tmp_path / "svc", ["terminal"], name="steerer")
    done = submit(service, str(sdist), "--wait")
    assert done.returncode == 10, done.stderr
    _shows_no_control(done.stderr, "submit --wait")
    (build,) = builds(service)
    assert build["state"] == "failed" and build["error_stage"] == "build"
    _shows_no_control(stored_log(service, build["id"]), "GET /v1/builds/{id}/log")
    (kept,) = (service.home / "store").rglob(f"logs/builds/{build['id']}.log")
    _shows_no_control(kept.read_text(encoding="utf-8"), "the stored log")

    # `build`, run here (the host executor: no second container), shows its failure tail so
    local = subprocess.run(
        [WHEELWRIGHT, "build", str(sdist), "--executor", "host", "--no-index"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={
            **service.env(),
            "WHEELWRIGHT_HOME": str(tmp_path / "local"),
            "WHEELWRIGHT_HOST__INHERIT_PACKAGES": "true",
        },
    )
    assert local.returncode == 10, local.stderr
    assert "--- last lines of the log ---" in local.stderr
    _shows_no_control(local.stderr, "build's failure tail")
    (local_log,) = (tmp_path / "local" / "store").rglob("logs/builds/*.log")
    _shows_no_control(local_log.read_text(encoding="utf-8"), "build's stored log")
    assert published_wheels(service) == []
    still_answering(service)
