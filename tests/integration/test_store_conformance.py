"""One conformance suite for every `WheelStore` backend: a local directory and S3 (moto server).

The S3 backend talks HTTP to a real `moto_server` process started once per session; if it cannot
start, these tests fail (never skip).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.api.app import create_app
from service.artifacts import Artifact, lookup, publish
from service.config import DatabaseSettings, Settings, StoreSettings
from service.errors import (
    ConfigError,
    InvalidArtifactError,
    InvalidRequestError,
    ObjectExistsError,
    ObjectNotFoundError,
)
from service.index.reindex import reindex
from service.index.sql import SqlCatalog, open_catalog
from service.store import LocalStore, S3Store, WheelStore, open_store
from tests.fixtures.wheels import make_wheel
from tests.integration.s3_server import moto_server

pytestmark = pytest.mark.s3

MOTO_KEY = "test"  # moto accepts any credentials
ENV = "cpu-py311-torch2.13.0-0123abcd"
REQUEST = "a" * 64


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint: str) -> Iterator[Any]:
    """A plain boto3 client, for what the store does not do (making buckets)."""
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_KEY,
    )
    yield client
    client.close()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> WheelStore:
    if request.param == "local":
        settings = Settings(home=tmp_path, store=StoreSettings(backend="local"))
        made = open_store(settings)
        assert isinstance(made, LocalStore)
        return made
    endpoint: str = request.getfixturevalue("s3_endpoint")
    bucket = f"wheels-{uuid.uuid4().hex[:12]}"
    store_settings = StoreSettings(
        backend="s3",
        s3_bucket=bucket,
        s3_prefix="wheelwright",
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        s3_access_key_id=MOTO_KEY,
        s3_secret_access_key=SecretStr(MOTO_KEY),
    )
    request.getfixturevalue("s3_admin").create_bucket(Bucket=bucket)
    made = open_store(Settings(home=tmp_path, store=store_settings))
    assert isinstance(made, S3Store)
    return made


def test_roundtrip(store: WheelStore) -> None:
    stored = store.put("a/b/c.txt", b"hello", content_type="text/plain")
    assert (stored.key, stored.size, stored.sha256) == ("a/b/c.txt", 5, sha256(b"hello"))
    assert store.get("a/b/c.txt") == b"hello"
    head = store.head("a/b/c.txt")
    assert (head.key, head.size, head.sha256) == ("a/b/c.txt", 5, sha256(b"hello"))
    assert store.exists("a/b/c.txt")
    assert not store.exists("a/b/other.txt")
    with store.open("a/b/c.txt") as stream:
        assert stream.read(2) == b"he"
        assert stream.read() == b"llo"
    assert [(o.key, o.size) for o in store.list("a/")] == [("a/b/c.txt", 5)]
    store.delete("a/b/c.txt")
    assert not store.exists("a/b/c.txt")
    store.delete("a/b/c.txt")  # deleting what is gone is fine
    assert list(store.list("")) == []


def test_streams_in_and_out(store: WheelStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    stored = store.put("big/blob.bin", io.BytesIO(data))
    assert (stored.size, stored.sha256) == (len(data), sha256(data))
    digest = hashlib.sha256()
    with store.open("big/blob.bin") as stream:
        while chunk := stream.read(64 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == sha256(data)
    assert store.head("big/blob.bin").sha256 == sha256(data)


def test_plain_put_replaces(store: WheelStore) -> None:
    store.put("k/v", b"one")
    store.put("k/v", b"two")
    assert store.get("k/v") == b"two"


def test_list_is_a_sorted_string_prefix(store: WheelStore) -> None:
    for key in ("b/w", "ab/z", "a/x", "a/b/y"):
        store.put(key, key.encode())
    assert [o.key for o in store.list("a/")] == ["a/b/y", "a/x"]
    assert [o.key for o in store.list("a")] == ["a/b/y", "a/x", "ab/z"]
    assert [o.key for o in store.list("")] == ["a/b/y", "a/x", "ab/z", "b/w"]
    assert [o.size for o in store.list("b/")] == [3]
    assert list(store.list("none/")) == []


def test_conditional_put_conflicts(store: WheelStore) -> None:
    store.put("cond/key", b"first", if_absent=True)
    with pytest.raises(ObjectExistsError):
        store.put("cond/key", b"second", if_absent=True)
    with pytest.raises(ObjectExistsError):
        store.put("cond/key", io.BytesIO(b"third"), if_absent=True)
    assert store.get("cond/key") == b"first"
    assert [o.key for o in store.list("cond/")] == ["cond/key"]


def test_missing_key(store: WheelStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.get("no/such/key")
    with pytest.raises(ObjectNotFoundError):
        store.open("no/such/key")
    with pytest.raises(ObjectNotFoundError):
        store.head("no/such/key")
    assert not store.exists("no/such/key")


BAD_KEYS = ["", "/abs/key", "a/../b", "..", "a//b", "a/", "a\\b", ".hidden", "a/./b", "a\x00b"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(store: WheelStore, key: str) -> None:
    operations: list[Callable[[], Any]] = [
        lambda: store.put(key, b"x"),
        lambda: store.put(key, b"x", if_absent=True),
        lambda: store.get(key),
        lambda: store.open(key),
        lambda: store.head(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.url(key, 60),
    ]
    for operation in operations:
        with pytest.raises(InvalidRequestError, match="invalid store key"):
            operation()
    with pytest.raises(InvalidRequestError):
        list(store.list("a//"))
    assert list(store.list("")) == []


def test_url(store: WheelStore) -> None:
    store.put("wheels/x/y.whl", b"wheel bytes")
    url = store.url("wheels/x/y.whl", 60)
    if isinstance(store, LocalStore):
        assert url is None
    else:
        assert url is not None
        assert httpx.get(url).content == b"wheel bytes"


def test_concurrent_conditional_puts_have_one_winner(store: WheelStore) -> None:
    contenders = 12
    barrier = threading.Barrier(contenders)
    outcomes: dict[int, str] = {}

    def contend(number: int) -> None:
        barrier.wait()
        try:
            store.put("race/key", f"writer {number}".encode(), if_absent=True)
            outcomes[number] = "won"
        except ObjectExistsError:
            outcomes[number] = "lost"

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == contenders
    assert len(winners) == 1
    assert store.get("race/key") == f"writer {winners[0]}".encode()
    assert [o.key for o in store.list("race/")] == ["race/key"]


def test_publish_layout_and_lookup(store: WheelStore, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", "Fake_Ext", "1.0+cpu", requires=["torch>=2"])
    artifact = publish(
        store,
        environment=ENV,
        request_key=REQUEST,
        wheel=wheel,
        manifest={"inputs": {"source": "fake-ext==1.0"}},
        log_key="logs/builds/b1.log",
        abi_pins={"torch": "2.13.0"},
    )
    keys = [o.key for o in store.list("")]
    assert keys == sorted(
        [
            f"builds/{ENV}/{REQUEST}.json",
            f"history/{REQUEST}/{artifact.sha256}",  # what a rebuild's bytes are compared with
            f"wheels/{artifact.sha256}/fake_ext-1.0+cpu-py3-none-any.whl",
            f"wheels/{artifact.sha256}/fake_ext-1.0+cpu-py3-none-any.whl.metadata",
            # its provenance, beside it (unsigned: no key configured)
            f"wheels/{artifact.sha256}/fake_ext-1.0+cpu-py3-none-any.whl.provenance",
        ]
    )
    assert artifact.provenance_key == keys[-1]
    stored_wheel = store.get(artifact.wheel_key)
    assert sha256(stored_wheel) == artifact.sha256 != sha256(wheel.read_bytes())
    metadata = store.get(artifact.metadata_key)
    assert sha256(metadata) == artifact.metadata_sha256
    assert b"Requires-Dist: torch==2.13.0\n" in metadata
    assert (artifact.project, artifact.version, artifact.requires_python) == (
        "fake-ext",
        "1.0+cpu",
        ">=3.8",
    )
    assert artifact.manifest["inputs"] == {"source": "fake-ext==1.0"}
    assert artifact.manifest["log"] == {"key": "logs/builds/b1.log"}  # kept by the builder
    assert lookup(store, ENV, REQUEST) == artifact
    assert lookup(store, ENV, "b" * 64) is None
    again = publish(store, environment=ENV, request_key=REQUEST, wheel=wheel, manifest={})
    assert again == artifact
    assert not list(store.list("logs/"))  # publish writes no log: the build's runner keeps it


def test_concurrent_publishes_commit_one_manifest(store: WheelStore, tmp_path: Path) -> None:
    wheels = [
        make_wheel(tmp_path / str(n), "racer", "2.0", files={"racer.py": f"N = {n}\n"})
        for n in range(4)
    ]
    barrier = threading.Barrier(len(wheels))
    results: list[Artifact] = []
    catalog = _catalog(tmp_path)

    def contend(wheel: Path) -> None:
        barrier.wait()
        results.append(
            publish(
                store,
                environment=ENV,
                request_key=REQUEST,
                wheel=wheel,
                manifest={"by": wheel.parent.name},
                catalog=catalog,
            )
        )

    threads = [threading.Thread(target=contend, args=(wheel,)) for wheel in wheels]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(wheels)
    assert all(result == results[0] for result in results)
    assert [o.key for o in store.list("builds/")] == [f"builds/{ENV}/{REQUEST}.json"]
    winner = lookup(store, ENV, REQUEST)
    assert winner == results[0]
    assert sha256(store.get(winner.wheel_key)) == winner.sha256
    listed = catalog.project_files(ENV, "racer")
    assert listed is not None
    assert [f.sha256 for f in listed] == [winner.sha256]  # every loser wrote the winner's row


def test_broken_wheels_are_refused_and_store_unchanged(store: WheelStore, tmp_path: Path) -> None:
    good = make_wheel(tmp_path / "good", "fine", "1.0")
    truncated = tmp_path / "truncated" / good.name
    truncated.parent.mkdir()
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    mismatched = make_wheel(tmp_path / "mismatch", "fine", "1.0", metadata_name="other")
    for wheel, message in ((truncated, "zip"), (mismatched, "'other'")):
        with pytest.raises(InvalidArtifactError, match=message):
            publish(store, environment=ENV, request_key=REQUEST, wheel=wheel, manifest={})
    assert list(store.list("")) == []


def test_index_catalog_lists_published_wheels(store: WheelStore, tmp_path: Path) -> None:
    for number, (env, version) in enumerate([(ENV, "1.0"), (ENV, "1.1"), ("other-env", "1.0")]):
        publish(
            store,
            environment=env,
            request_key=f"req{number}",
            wheel=make_wheel(tmp_path / str(number), "Listed.Pkg", version),
            manifest={},
        )
    catalog = _catalog(tmp_path)
    found = reindex(store, catalog, workers=4)  # from S3 too: the catalog's repair
    assert (found.manifests, found.recorded, found.skipped) == (3, 3, 0)
    assert catalog.environment_names() == [ENV, "other-env"]
    files = catalog.environment(ENV).projects["listed-pkg"]
    assert [f.filename for f in files] == [
        "listed_pkg-1.0-py3-none-any.whl",
        "listed_pkg-1.1-py3-none-any.whl",
    ]
    assert all(store.get(f.metadata_key) for f in files)


def _catalog(tmp_path: Path) -> SqlCatalog:
    url = SecretStr(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    return open_catalog(Settings(home=tmp_path, database=DatabaseSettings(url=url)))


def test_the_api_serves_files_from_the_store(store: WheelStore, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", "served", "1.0")
    artifact = publish(store, environment=ENV, request_key=REQUEST, wheel=wheel, manifest={})
    for presign in (False, True):
        settings = Settings(home=tmp_path, store=StoreSettings(presign=presign))
        with TestClient(create_app(settings, store=store), follow_redirects=False) as client:
            response = client.get(f"/files/{artifact.wheel_key}")
            if presign and isinstance(store, S3Store):
                assert response.status_code == 302
                response = httpx.get(response.headers["location"])
            assert response.status_code == 200
            assert sha256(response.content) == artifact.sha256


def test_an_s3_store_needs_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bucket"):
        open_store(Settings(home=tmp_path, store=StoreSettings(backend="s3")))
