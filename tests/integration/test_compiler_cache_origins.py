"""Issue 17, hole 2: one origin never writes the compiler cache another origin trusts.

Each attacker here builds a package of the team's name whose build stage writes a trojaned
"object" into the cache folder (it can: the folder is the build stage's). Real dockerd, the CPU
image with sccache, a small C extension (modern-ext); the index attack through the real
pipeline with a loopback PEP 503 index, the upload attack through the real API and worker
(Redis, two tokens):
- a request naming its own index that serves a same-named sdist starts with nothing brought
  and saves to its own scope; the team's rebuild from its own index still hits, and its cache
  holds no trojan;
- an upload by another token starts with nothing brought; the first token's rebuild still hits.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import httpx
import pytest
from cachekit import sccache_image, sdist_of
from enginekit import FIXTURES, managed_containers
from hostilekit import hostile_sdist
from projectkit import fixture_index
from servicekit import Service

from service import layout
from service.config import Settings, load_settings
from service.models import BuildRequest
from service.store import LocalStore, WheelStore
from worker.compiler_cache import generations, scope_prefix
from worker.engine import Hooks
from worker.executors.docker import DockerExecutor
from worker.pipeline import build_and_publish

pytestmark = pytest.mark.docker
PYPI = "https://pypi.org/simple"
TROJAN = "f/0/f0-trojan"
TOKENS = {"team-a": "team-a-token-0f3c9b2e7d41a8", "team-b": "team-b-token-6a1d5e90c3b7f2"}


@pytest.fixture(scope="module")
def image(docker_client: docker.DockerClient) -> str:
    return sccache_image(docker_client, "cpu")


def _members(store: WheelStore, scope: str) -> list[str]:
    """The member names of the scope's newest stored generation."""
    found = generations(store, scope_prefix(scope))
    assert found, f"nothing stored for {scope}"
    with store.open(found[-1][1]) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        return [member.name for member in tar]


def _cache(manifest: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = manifest["compiler_cache"]
    assert section["enabled"] is True, section
    return section


def test_a_build_from_another_index_brings_nothing_and_the_teams_rebuild_still_hits(
    tmp_path: Path, image: str, docker_client: docker.DockerClient
) -> None:
    team_folder = tmp_path / "team-sdists"
    sdist_of(FIXTURES / "modern-ext", team_folder, "modern_ext", "2.0.0")
    settings = load_settings(
        home=tmp_path / "home",
        sources={"find_links": [str(team_folder)]},
    )
    store = LocalStore(tmp_path / "store")

    def build(
        index: dict[str, Any], settings: Settings = settings, **fields: Any
    ) -> tuple[dict[str, Any], str]:
        source = {"kind": "requirement", "requirement": "modern-ext==2.0.0"}
        request = BuildRequest.model_validate(
            {"source": source, "index": index, "target": {"image": image}, **fields}
        )
        lines: list[str] = []
        outcome = build_and_publish(
            request, settings, store, DockerExecutor(settings), hooks=Hooks(on_line=lines.append)
        )
        assert not outcome.cached
        return outcome.artifact.manifest, "\n".join(lines)

    team_index = {"find_links": [str(team_folder)]}
    cold, _ = build(team_index)
    team_scope = _cache(cold)["scope"]
    assert team_scope.partition("#")[0] == f"index:modern-ext@file:{team_folder}"
    misses = _cache(cold)["counts"]["misses"]
    assert misses >= 1

    # the attacker's own index serves a same-named sdist whose build plants an object
    root = tmp_path / "attacker-index"
    hostile = hostile_sdist(
        tmp_path / "hostile", ["compiler_cache"], name="modern-ext", version="2.0.0"
    )
    (root / "files").mkdir(parents=True)
    shutil.copy(hostile, root / "files" / hostile.name)
    with fixture_index(root, {}) as url:
        # the operator allows the loopback index's host and port (a team's private index)
        allowed = (f"127.0.0.1:{urlsplit(url).port}",)
        sources = settings.sources.model_copy(update={"private_hosts": allowed})
        attack, attack_log = build(
            {"index_url": url, "extra_index_urls": [PYPI]},
            settings.model_copy(update={"sources": sources}),
        )
    section = _cache(attack)
    attacker_scope = section["scope"]
    assert attacker_scope.partition("#")[0] == f"index:modern-ext@{url.rstrip('/')}"
    assert section["brought"] == {**section["brought"], "scope": None, "generation": 0, "files": 0}
    assert f"compiler cache of {attacker_scope}: none stored yet" in attack_log
    assert "probe compiler cache: WORKED" in attack_log  # the folder is the build stage's
    assert TROJAN in _members(store, attacker_scope)  # saved, to the attacker's scope alone

    # the team's next build of that name from its own index: its own generation, still hits
    warm, warm_log = build(team_index, verify_imports=["modern_ext"])
    section = _cache(warm)
    assert section["scope"] == team_scope
    assert (section["brought"]["scope"], section["brought"]["generation"]) == (team_scope, 1)
    assert section["counts"]["hits"] == misses, section["counts"]
    assert section["counts"]["misses"] == 0
    assert f"compiler cache of {team_scope}: generation 1" in warm_log
    assert TROJAN not in _members(store, team_scope)
    assert [g for g, _ in generations(store, scope_prefix(team_scope))] == [1]  # nothing new
    assert managed_containers(docker_client, settings.home) == []


@pytest.fixture
def service(
    tmp_path: Path, redis_url: str, image: str, docker_client: docker.DockerClient
) -> Iterator[Service]:
    tokens = [{"name": n, "token": t, "scopes": ["build"]} for n, t in TOKENS.items()]
    svc = Service(
        home=tmp_path / "home",
        redis_url=redis_url,
        build_timeout_s=600,
        extra_env={"WHEELWRIGHT_AUTH__TOKENS": json.dumps(tokens)},
    )
    svc.start_api()
    svc.start_worker()
    yield svc
    svc.stop()
    assert managed_containers(docker_client, svc.home) == [], "a build container was left behind"


def _upload(svc: Service, token: str, archive: Path, **options: Any) -> dict[str, Any]:
    """Upload as `token`, wait for the build; its manifest (from the service's store), log."""
    auth = {"Authorization": f"Bearer {TOKENS[token]}"}
    with archive.open("rb") as fh:
        answer = httpx.post(
            f"{svc.url}/v1/builds",
            files={"file": (archive.name, fh)},
            data={"options": json.dumps(options)},
            headers=auth,
            timeout=30,
        )
    assert answer.status_code == 202, answer.text
    build_id = answer.json()["build"]["build"]["id"]
    deadline = time.monotonic() + 600
    while True:  # the API's own record is the event: polled, as the CLI's --wait does
        done = httpx.get(f"{svc.url}/v1/builds/{build_id}", headers=auth, timeout=10)
        record = done.json()["build"]
        if record["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    log = httpx.get(f"{svc.url}/v1/builds/{build_id}/log", headers=auth, timeout=30).text
    assert record["state"] == "succeeded", (record, log[-3000:])
    assert record["requested_by"]["token"] == token
    key = layout.manifest_key(record["environment"], record["request_key"])
    manifest = json.loads(LocalStore(svc.home / "store").get(key))
    return {"manifest": manifest, "log": log}


def test_an_upload_by_another_token_brings_nothing_and_the_first_tokens_rebuild_hits(
    service: Service, tmp_path: Path
) -> None:
    mine = sdist_of(FIXTURES / "modern-ext", tmp_path / "a", "modern_ext", "2.0.0")
    cold = _upload(service, "team-a", mine)
    scope_a = _cache(cold["manifest"])["scope"]
    assert scope_a.partition("#")[0] == "upload:modern-ext@token:team-a"
    misses = _cache(cold["manifest"])["counts"]["misses"]
    assert misses >= 1

    theirs = hostile_sdist(tmp_path / "b", ["compiler_cache"], name="modern_ext", version="2.0.0")
    attack = _upload(service, "team-b", theirs)
    section = _cache(attack["manifest"])
    scope_b = section["scope"]
    assert scope_b.partition("#")[0] == "upload:modern-ext@token:team-b"
    assert (section["brought"]["scope"], section["brought"]["generation"]) == (None, 0)
    assert "probe compiler cache: WORKED" in attack["log"]

    warm = _upload(service, "team-a", mine, verify_imports=["modern_ext"])
    section = _cache(warm["manifest"])
    assert section["scope"] == scope_a
    assert (section["brought"]["scope"], section["brought"]["generation"]) == (scope_a, 1)
    assert section["counts"]["hits"] == misses and section["counts"]["misses"] == 0
    store = LocalStore(service.home / "store")
    assert TROJAN not in _members(store, scope_a)
    assert TROJAN in _members(store, scope_b)
    assert httpx.get(f"{service.url}/readyz", timeout=5).status_code == 200
