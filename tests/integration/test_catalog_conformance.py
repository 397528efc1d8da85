"""One conformance test for every `Catalog`: `SqlCatalog` on SQLite and on a real PostgreSQL.

The rows come from the real `publish` into a local store, so what is checked is the path a
wheel takes: manifest committed, row written, page rendered from the row. Reindex from that
store gives the same pages byte for byte, and a publish that died between the manifest and its
row is listed by the next publish or reindex, never half.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.api.app import create_app
from service.artifacts import Artifact, publish
from service.config import DatabaseSettings, Settings
from service.db import open_engine, upgrade
from service.db.tables import metadata
from service.errors import CatalogError, UnknownEnvironmentError
from service.index import HTML, JSON_V1, CatalogFile, build_environment_index
from service.index.reindex import reindex
from service.index.sql import SqlCatalog
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel

pytestmark = pytest.mark.postgres

ENV = "cpu-py311-torch2.13.0-c0ffee01"
OTHER = "cpu-py311-torch2.12.0-c0ffee02"
VERIFY = {
    "cuda": {"arch_list": "9.0", "sass": ["sm_90"], "ptx": ["compute_90"], "modules": {}},
    "gpu": {"present": True, "kernel_run": True, "device": "H200", "capability": "9.0"},
}


@pytest.fixture
def catalog(database_url: str) -> SqlCatalog:
    return SqlCatalog(open_engine(database_url))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _publish(
    store: LocalStore,
    tmp: Path,
    catalog: SqlCatalog | None,
    *,
    name: str,
    version: str,
    environment: str = ENV,
    key: str | None = None,
    manifest: dict[str, object] | None = None,
) -> Artifact:
    folder = tmp / f"w-{environment}-{name}-{version}-{key}"
    return publish(
        store,
        environment=environment,
        request_key=key or f"{name}-{version}".lower().replace("+", "."),
        wheel=make_wheel(folder, name, version, requires=["abi-dep"]),
        manifest=manifest or {},
        catalog=catalog,
    )


def _fill(store: LocalStore, tmp: Path, catalog: SqlCatalog | None) -> list[Artifact]:
    return [
        _publish(
            store, tmp, catalog, name="Fake_Ext", version="1.10+cpu", manifest={"verify": VERIFY}
        ),
        _publish(store, tmp, catalog, name="fake-ext", version="1.9"),
        _publish(store, tmp, catalog, name="abi-dep", version="1.0"),
        _publish(store, tmp, catalog, name="abi-dep", version="1.0", environment=OTHER),
    ]


def test_an_empty_catalog_answers_nothing_and_is_not_ready(catalog: SqlCatalog) -> None:
    assert catalog.environment_names() == []
    assert catalog.all_project_names() == []
    with pytest.raises(UnknownEnvironmentError, match=ENV):
        catalog.project_names(ENV)
    with pytest.raises(UnknownEnvironmentError, match=ENV):
        catalog.project_files(ENV, "x")
    with pytest.raises(UnknownEnvironmentError, match=ENV):
        catalog.environment(ENV)
    assert not catalog.filled()
    with pytest.raises(CatalogError, match="not filled"):
        catalog.ready()
    catalog.mark_filled()
    catalog.ready()


def test_published_rows_answer_every_page_question(
    catalog: SqlCatalog, store: LocalStore, tmp_path: Path
) -> None:
    published = _fill(store, tmp_path, catalog)
    assert catalog.environment_names() == sorted([ENV, OTHER])
    assert catalog.project_names(ENV) == ["abi-dep", "fake-ext"]
    assert catalog.all_project_names() == ["abi-dep", "fake-ext"]
    files = catalog.project_files(ENV, "fake-ext")
    assert files is not None
    assert [f.filename for f in files] == [
        "fake_ext-1.10+cpu-py3-none-any.whl",
        "fake_ext-1.9-py3-none-any.whl",
    ]
    assert files[0] == CatalogFile.of(published[0])  # every field, exact to the microsecond
    assert files[0].verified == published[0].verified
    assert catalog.project_files(ENV, "no-such") is None
    index = catalog.environment(ENV)
    assert index == build_environment_index(ENV, [CatalogFile.of(a) for a in published[:3]])
    assert catalog.count() == 4


def test_every_write_to_an_environment_gives_it_a_new_generation(
    catalog: SqlCatalog, store: LocalStore, tmp_path: Path
) -> None:
    with pytest.raises(UnknownEnvironmentError, match=ENV):
        catalog.generation(ENV)
    published = _fill(store, tmp_path, catalog)
    seen = [catalog.generation(ENV)]
    other = catalog.generation(OTHER)
    catalog.record(published[0])  # even the same row again: a reader re-renders, harmlessly
    seen.append(catalog.generation(ENV))
    catalog.set_yanked(ENV, published[0].request_key, "why")
    seen.append(catalog.generation(ENV))
    catalog.prune(
        {(a.environment, a.request_key) for a in published[1:]}, published_before_us=2**62
    )
    seen.append(catalog.generation(ENV))
    assert len(set(seen)) == len(seen)
    assert catalog.generation(OTHER) != other  # a prune may have removed from any
    elsewhere = SqlCatalog(open_engine(catalog.engine.url.render_as_string(hide_password=False)))
    before = catalog.generation(OTHER)
    elsewhere.record(published[3])
    assert catalog.generation(OTHER) != before


def test_a_row_written_twice_is_one_row(
    catalog: SqlCatalog, store: LocalStore, tmp_path: Path
) -> None:
    published = _fill(store, tmp_path, catalog)
    for artifact in published:
        catalog.record(artifact)
    assert catalog.record_many(CatalogFile.of(a) for a in published) == 4
    assert catalog.count() == 4
    again = _publish(store, tmp_path, catalog, name="abi-dep", version="1.0")  # already there
    assert again == published[2]
    assert catalog.count() == 4


def test_of_one_filename_the_last_published_is_listed(catalog: SqlCatalog) -> None:
    first = CatalogFile(
        environment=ENV,
        request_key="a",
        project="pkg",
        filename="pkg-1.0-py3-none-any.whl",
        version="1.0",
        sha256="a" * 64,
        size=1,
        metadata_sha256="f" * 64,
        requires_python=None,
        published_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    later = replace(
        first,
        request_key="b",
        sha256="b" * 64,
        published_at=first.published_at.replace(year=2026, month=2),
    )
    catalog.record_many([later, first])
    listed = catalog.project_files(ENV, "pkg")
    assert listed is not None
    assert [f.sha256 for f in listed] == ["b" * 64]


def test_a_yanked_file_is_marked_on_both_pages_and_stays_yanked_through_reindex(
    catalog: SqlCatalog, store: LocalStore, tmp_path: Path
) -> None:
    artifact = _publish(store, tmp_path, catalog, name="oops", version="1.0")
    assert catalog.set_yanked(ENV, artifact.request_key, "broken ABI")
    assert not catalog.set_yanked(ENV, "no-such-request", "x")
    reindex(store, catalog)  # the manifest knows nothing of it: the yank stays
    catalog.record(artifact)
    settings = _settings(tmp_path, catalog)
    with TestClient(create_app(settings, store=store)) as client:
        html = client.get(f"/simple/{ENV}/oops/", headers={"Accept": HTML}).text
        entry = client.get(f"/simple/{ENV}/oops/", headers={"Accept": JSON_V1}).json()
        assert 'data-yanked="broken ABI"' in html
        assert entry["files"][0]["yanked"] == "broken ABI"
        assert catalog.set_yanked(ENV, artifact.request_key, None)
        entry = client.get(f"/simple/{ENV}/oops/", headers={"Accept": JSON_V1}).json()
        assert "yanked" not in entry["files"][0]


def test_prune_removes_only_rows_older_than_the_listing(
    catalog: SqlCatalog, store: LocalStore, tmp_path: Path
) -> None:
    published = _fill(store, tmp_path, catalog)
    keep = {(a.environment, a.request_key) for a in published[:2]}
    newest_us = max(int(a.published_at.timestamp() * 1_000_000) for a in published)
    assert catalog.prune(keep, published_before_us=newest_us) == 1  # the last one stays: newer
    assert catalog.environment_names() == sorted([ENV, OTHER])
    assert catalog.prune(keep, published_before_us=newest_us + 1) == 1
    assert catalog.environment_names() == [ENV]  # an environment with no file is gone
    assert catalog.project_names(ENV) == ["fake-ext"]
    catalog.record(published[2])  # written again after a prune: new ids, same answers
    assert catalog.project_names(ENV) == ["abi-dep", "fake-ext"]


def test_concurrent_writers_of_one_project_make_one_row_each(
    catalog: SqlCatalog, store: LocalStore, tmp_path: Path
) -> None:
    artifact = _publish(store, tmp_path, None, name="racer", version="1.0")
    rows = [
        replace(
            CatalogFile.of(artifact), request_key=f"k{n}", filename=f"racer-1.{n}-py3-none-any.whl"
        )
        for n in range(40)
    ]
    writers = [SqlCatalog(catalog.engine) for _ in range(8)]  # each its own id cache
    barrier = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def write(number: int) -> None:
        barrier.wait()
        try:
            for row in rows[number::2]:
                writers[number].record_many([row])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    listed = catalog.project_files(ENV, "racer")
    assert listed is not None and len(listed) == 40
    assert catalog.project_names(ENV) == ["racer"]


def _settings(tmp_path: Path, catalog: SqlCatalog) -> Settings:
    url = SecretStr(catalog.engine.url.render_as_string(hide_password=False))
    return Settings(home=tmp_path / "home", database=DatabaseSettings(url=url))


def _pages(client: TestClient, names: dict[str, list[str]]) -> Iterator[tuple[str, str, bytes]]:
    for accept in (JSON_V1, HTML):
        root = client.get("/simple/", headers={"Accept": accept})
        yield "/simple/", accept, root.content
        for environment, projects in names.items():
            for path in [
                f"/simple/{environment}/",
                *(f"/simple/{environment}/{p}/" for p in projects),
            ]:
                page = client.get(path, headers={"Accept": accept})
                assert page.status_code == 200, path
                yield path, accept, page.content
            yield (
                f"/find-links/{environment}/",
                accept,
                client.get(f"/find-links/{environment}/").content,
            )


def test_reindex_of_the_published_store_gives_the_same_pages_byte_for_byte(
    database_url: str, store: LocalStore, tmp_path: Path
) -> None:
    live = SqlCatalog(open_engine(database_url))
    live.mark_filled()
    _fill(store, tmp_path, live)
    names = {env: live.project_names(env) for env in live.environment_names()}
    with TestClient(create_app(_settings(tmp_path / "a", live), store=store)) as client:
        before = list(_pages(client, names))
    rebuilt = SqlCatalog(open_engine(f"sqlite:///{tmp_path / 'rebuilt.sqlite3'}"))
    found = reindex(store, rebuilt, workers=4)
    assert (found.manifests, found.recorded, found.skipped, found.removed) == (4, 4, 0, 0)
    with TestClient(create_app(_settings(tmp_path / "b", rebuilt), store=store)) as client:
        after = list(_pages(client, names))
    assert after == before
    assert len(before) == 2 * (1 + (1 + 2 + 1) + (1 + 1 + 1))
    again = reindex(store, live, workers=2)  # over the rows publish wrote: nothing changes
    assert (again.recorded, again.removed) == (4, 0)
    with TestClient(create_app(_settings(tmp_path / "c", live), store=store)) as client:
        assert list(_pages(client, names)) == before


class _DiesBeforeTheRow:
    """The catalog of a publisher that dies after its manifest commits, before its row."""

    def __init__(self, catalog: SqlCatalog) -> None:
        self.catalog = catalog

    def record(self, artifact: Artifact) -> None:
        raise CatalogError("the publisher died here")


def test_a_publish_that_died_before_its_row_is_listed_by_the_next_publish_or_reindex(
    catalog: SqlCatalog, store: LocalStore, tmp_path: Path
) -> None:
    catalog.mark_filled()
    _publish(store, tmp_path, catalog, name="abi-dep", version="1.0")
    dying = _DiesBeforeTheRow(catalog)
    for version in ("2.0", "3.0"):
        with pytest.raises(CatalogError, match="died"):
            _publish(store, tmp_path, dying, name="abi-dep", version=version)  # type: ignore[arg-type]
    assert store.exists(f"builds/{ENV}/abi-dep-2.0.json")  # the manifest committed
    with TestClient(create_app(_settings(tmp_path, catalog), store=store)) as client:
        page = client.get(f"/simple/{ENV}/abi-dep/", headers={"Accept": JSON_V1}).json()
        assert page["versions"] == ["1.0"]  # not listed half: not listed at all
        _publish(store, tmp_path, catalog, name="abi-dep", version="2.0")  # the retry
        page = client.get(f"/simple/{ENV}/abi-dep/", headers={"Accept": JSON_V1}).json()
        assert page["versions"] == ["1.0", "2.0"]
        reindex(store, catalog)
        page = client.get(f"/simple/{ENV}/abi-dep/", headers={"Accept": JSON_V1}).json()
        assert page["versions"] == ["1.0", "2.0", "3.0"]


def test_migrations_make_the_declared_schema_and_run_twice_as_a_no_op(database_url: str) -> None:
    engine = open_engine(database_url)
    upgrade(engine)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_a_database_that_does_not_answer_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot be migrated"):
        SqlCatalog(open_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
