"""The index pages (pure rendering, PEP 503/691/658/700 details, negotiation) and the routes
that serve them (in-process over a local store)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient
from pypi_simple import IndexPage, ProjectPage
from sqlalchemy import text

from service.api.app import create_app
from service.artifacts import publish
from service.config import Settings, StoreSettings
from service.errors import InvalidRequestError
from service.index import (
    HTML,
    HTML_V1,
    JSON_V1,
    CatalogFile,
    build_environment_index,
    choose_media_type,
    find_links_page,
    project_page,
    projects_page,
)
from service.index.reindex import reindex
from service.index.sql import open_catalog
from service.index_config import render_index_config, render_uv_config
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel

ENV = "cu128-torch2.13.0-abcdef01"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, HTML),
        ("", HTML),
        (PIP_ACCEPT, JSON_V1),
        (UV_ACCEPT, JSON_V1),
        ("application/vnd.pypi.simple.v1+html", HTML_V1),
        ("text/html", HTML),
        ("TEXT/HTML", HTML),
        ("*/*", HTML),
        ("application/*", JSON_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
        ("application/vnd.pypi.simple.v1+json;q=0.5, text/html;q=0.9", HTML),
        ("*/*;q=0.1, application/vnd.pypi.simple.v1+json;q=0", HTML),
        ("text/*;q=0.5, application/vnd.pypi.simple.v1+json;q=0.4", HTML),
        ("text/html;q=abc, application/vnd.pypi.simple.v1+json;q=0.3", JSON_V1),
        ("text/html, application/vnd.pypi.simple.v1+json", HTML),
        ("application/json", None),
        ("text/html;q=0", None),
        ("application/vnd.pypi.simple.v2+json", None),
        ("garbage", None),
    ],
)
def test_negotiation(accept: str | None, expected: str | None) -> None:
    assert choose_media_type(accept) == expected


def _file(filename: str, **overrides: object) -> CatalogFile:
    name, version = filename.split("-")[:2]
    fields: dict[str, object] = {
        "environment": ENV,
        "request_key": hashlib.sha256(filename.encode()).hexdigest()[:16],
        "filename": filename,
        "sha256": "0" * 64,
        "size": 1234,
        "project": name.replace("_", "-"),
        "version": version,
        "requires_python": ">=3.8,<4",
        "metadata_sha256": "f" * 64,
        "published_at": datetime(2025, 1, 2, 3, 4, 5, 678900, tzinfo=UTC),
    }
    fields.update(overrides)
    return CatalogFile(**fields)  # type: ignore[arg-type]


INDEX = build_environment_index(
    ENV,
    [
        _file("fake_ext-1.10+cu128-py3-none-any.whl"),
        _file("fake_ext-1.9-py3-none-any.whl", requires_python=None, metadata_sha256=""),
        _file("abi_dep-1.0-py3-none-any.whl"),
    ],
)
PREFIX = "../../../files/"


def test_index_groups_by_normalized_project() -> None:
    assert list(INDEX.projects) == ["abi-dep", "fake-ext"]
    assert [f.filename for f in INDEX.projects["fake-ext"]] == [
        "fake_ext-1.10+cu128-py3-none-any.whl",
        "fake_ext-1.9-py3-none-any.whl",
    ]


def test_index_keeps_the_latest_of_one_filename() -> None:
    older = _file("pkg-1.0-py3-none-any.whl", sha256="a" * 64)
    newer = _file(
        "pkg-1.0-py3-none-any.whl",
        sha256="b" * 64,
        published_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    for order in ([older, newer], [newer, older]):
        index = build_environment_index(ENV, order)
        newest = f"wheels/{'b' * 64}/pkg-1.0-py3-none-any.whl"
        assert [f.wheel_key for f in index.projects["pkg"]] == [newest]


def test_project_html_carries_every_attribute() -> None:
    page = project_page("fake-ext", INDEX.projects["fake-ext"], HTML, PREFIX)
    assert page.content_type == "text/html; charset=utf-8"
    html = page.body.decode()
    assert '<meta name="pypi:repository-version" content="1.1">' in html
    local = INDEX.projects["fake-ext"][0]
    assert (
        f'<a href="../../../files/wheels/{"0" * 64}/fake_ext-1.10%2Bcu128-py3-none-any.whl'
        f'#sha256={local.sha256}" data-requires-python="&gt;=3.8,&lt;4" '
        f'data-dist-info-metadata="sha256={"f" * 64}" data-core-metadata="sha256={"f" * 64}">'
        "fake_ext-1.10+cu128-py3-none-any.whl</a><br>"
    ) in html
    plain = INDEX.projects["fake-ext"][1]
    assert (
        f'<a href="../../../files/wheels/{"0" * 64}/fake_ext-1.9-py3-none-any.whl'
        f'#sha256={plain.sha256}">fake_ext-1.9-py3-none-any.whl</a>'
    ) in html
    parsed = ProjectPage.from_html("fake-ext", page.body, base_url="http://h/simple/env/fake-ext/")
    first = parsed.packages[0]
    assert first.url == f"http://h/files/wheels/{'0' * 64}/fake_ext-1.10%2Bcu128-py3-none-any.whl"
    assert first.digests == {"sha256": local.sha256}
    assert first.requires_python == ">=3.8,<4"
    assert first.has_metadata is True
    assert first.metadata_digests == {"sha256": "f" * 64}
    assert parsed.repository_version == "1.1"


def test_project_json_is_pep_691_v1_1() -> None:
    page = project_page("fake-ext", INDEX.projects["fake-ext"], JSON_V1, PREFIX)
    assert page.content_type == JSON_V1
    data = json.loads(page.body)
    assert data["meta"] == {"api-version": "1.1"}
    assert data["name"] == "fake-ext"
    assert data["versions"] == ["1.9", "1.10+cu128"]
    local, plain = data["files"]
    assert local == {
        "filename": "fake_ext-1.10+cu128-py3-none-any.whl",
        "url": f"../../../files/wheels/{'0' * 64}/fake_ext-1.10%2Bcu128-py3-none-any.whl",
        "hashes": {"sha256": INDEX.projects["fake-ext"][0].sha256},
        "requires-python": ">=3.8,<4",
        "core-metadata": {"sha256": "f" * 64},
        "dist-info-metadata": {"sha256": "f" * 64},
        "size": 1234,
        "upload-time": "2025-01-02T03:04:05.678900Z",
    }
    assert "requires-python" not in plain
    assert plain["core-metadata"] is False
    parsed = ProjectPage.from_json_data(data, base_url="http://h/simple/env/fake-ext/")
    assert [p.version for p in parsed.packages] == ["1.10+cu128", "1.9"]
    assert parsed.packages[0].size == 1234


def test_v1_html_is_served_as_asked() -> None:
    page = project_page("fake-ext", INDEX.projects["fake-ext"], HTML_V1, PREFIX)
    assert page.content_type == f"{HTML_V1}; charset=utf-8"


def test_projects_page_in_both_formats() -> None:
    html = projects_page(ENV, list(INDEX.projects), HTML).body.decode()
    assert '<a href="abi-dep/">abi-dep</a><br>' in html
    assert IndexPage.from_html(html).projects == ["abi-dep", "fake-ext"]
    data = json.loads(projects_page(ENV, list(INDEX.projects), JSON_V1).body)
    assert data == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "abi-dep"}, {"name": "fake-ext"}],
    }


def test_find_links_page_lists_every_wheel() -> None:
    page = find_links_page(INDEX, "../../files/")
    assert page.content_type == "text/html; charset=utf-8"
    html = page.body.decode()
    assert html.count("<a href=") == 3
    assert 'href="../../files/wheels/' in html
    assert "fake_ext-1.10%2Bcu128-py3-none-any.whl#sha256=" in html


# --- the routes, in process -------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, LocalStore]]:
    store = LocalStore(tmp_path / "store")
    for key, (name, version) in enumerate([("Fake_Ext", "1.0+cpu"), ("abi-dep", "1.0")]):
        publish(
            store,
            environment=ENV,
            request_key=f"req{key}",
            wheel=make_wheel(tmp_path / str(key), name, version, requires=["abi-dep"]),
            manifest={},
            abi_pins={"abi-dep": "1.0"} if name == "Fake_Ext" else None,
        )
    settings = Settings(home=tmp_path, store=StoreSettings(presign=True))
    with TestClient(create_app(settings, store=store), follow_redirects=False) as client:
        yield client, store


def test_redirects_to_normalized_trailing_slash_urls(
    served: tuple[TestClient, LocalStore],
) -> None:
    client, _ = served
    for path, location in [
        ("/simple", "/simple/"),
        (f"/simple/{ENV}", f"/simple/{ENV}/"),
        (f"/simple/{ENV}/Fake_Ext", f"/simple/{ENV}/fake-ext/"),
        (f"/simple/{ENV}/Fake.Ext/", f"/simple/{ENV}/fake-ext/"),
        (f"/simple/{ENV}/fake-ext", f"/simple/{ENV}/fake-ext/"),
        (f"/find-links/{ENV}", f"/find-links/{ENV}/"),
    ]:
        response = client.get(path)
        assert (response.status_code, response.headers["location"]) == (301, location), path
        assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_pages_negotiate_and_always_say_their_type(served: tuple[TestClient, LocalStore]) -> None:
    client, _ = served
    page = client.get(f"/simple/{ENV}/fake-ext/", headers={"Accept": PIP_ACCEPT})
    assert page.status_code == 200
    assert page.headers["content-type"] == JSON_V1
    assert page.headers["vary"] == "Accept"
    assert page.json()["files"][0]["filename"] == "fake_ext-1.0+cpu-py3-none-any.whl"
    html = client.get(f"/simple/{ENV}/fake-ext/")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    refused = client.get(f"/simple/{ENV}/fake-ext/", headers={"Accept": "application/json"})
    assert refused.status_code == 406
    assert refused.headers["content-type"] == "text/plain; charset=utf-8"
    root = client.get("/simple/", headers={"Accept": JSON_V1})
    assert root.json()["environments"] == [{"name": ENV}]
    projects = client.get(f"/simple/{ENV}/", headers={"Accept": JSON_V1}).json()["projects"]
    assert projects == [{"name": "abi-dep"}, {"name": "fake-ext"}]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_links_resolve_to_the_wheel_and_its_metadata(
    served: tuple[TestClient, LocalStore],
) -> None:
    client, store = served
    page_url = f"http://testserver/simple/{ENV}/fake-ext/"
    entry = client.get(page_url, headers={"Accept": JSON_V1}).json()["files"][0]
    url = urljoin(page_url, entry["url"])
    assert "%2B" in url
    wheel = client.get(url)
    assert wheel.status_code == 200
    assert wheel.headers["content-type"] == "application/octet-stream"
    assert wheel.headers["content-length"] == str(entry["size"])
    assert hashlib.sha256(wheel.content).hexdigest() == entry["hashes"]["sha256"]
    metadata = client.get(url + ".metadata")
    assert hashlib.sha256(metadata.content).hexdigest() == entry["core-metadata"]["sha256"]
    assert b"Requires-Dist: abi-dep==1.0" in metadata.content
    flat = client.get(f"/find-links/{ENV}/")
    assert flat.headers["content-type"] == "text/html; charset=utf-8"
    assert flat.text.count("<a href=") == 2
    assert [o.key for o in store.list("wheels/")]  # served from the store, nothing else


def test_missing_things_are_404(served: tuple[TestClient, LocalStore]) -> None:
    client, _ = served
    for path in [
        "/simple/no-such-env/",
        "/simple/Bad%20Env/",
        f"/simple/{ENV}/no-such-project/",
        "/find-links/no-such-env/",
        "/files/wheels/none/x.whl",
        "/files/builds/x.json",
        "/files/wheels/%2E%2E/x",
    ]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"], path


def test_a_publish_is_listed_at_once_and_a_removed_manifest_goes_at_reindex(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    settings = Settings(home=tmp_path)
    catalog = open_catalog(settings)
    client = TestClient(create_app(settings, store=store))

    def add(number: int) -> None:
        wheel = make_wheel(tmp_path / str(number), "pkg", f"1.{number}")
        publish(
            store,
            environment=ENV,
            request_key=f"r{number}",
            wheel=wheel,
            manifest={},
            catalog=catalog,
        )

    def versions() -> list[str]:
        page = client.get(f"/simple/{ENV}/pkg/", headers={"Accept": JSON_V1})
        return list(page.json()["versions"])

    add(0)
    assert versions() == ["1.0"]
    add(1)
    add(2)
    assert versions() == ["1.0", "1.1", "1.2"]
    store.delete(f"builds/{ENV}/r0.json")
    assert versions() == ["1.0", "1.1", "1.2"]  # the catalog is not the store: reindex repairs
    found = reindex(store, catalog)
    assert (found.manifests, found.recorded, found.removed) == (2, 2, 1)
    assert versions() == ["1.1", "1.2"]


def test_every_page_has_an_etag_and_answers_304_until_a_publish(
    served: tuple[TestClient, LocalStore], tmp_path: Path
) -> None:
    client, store = served
    paths = ["/simple/", f"/simple/{ENV}/", f"/simple/{ENV}/fake-ext/", f"/find-links/{ENV}/"]
    for accept in (JSON_V1, "text/html", HTML_V1):
        for path in paths:
            first = client.get(path, headers={"Accept": accept})
            etag = first.headers["etag"]
            assert etag.startswith('"') and first.status_code == 200, path
            for asked in (etag, f"W/{etag}", f'"other", {etag}', "*"):
                again = client.get(path, headers={"Accept": accept, "If-None-Match": asked})
                assert (again.status_code, again.content) == (304, b""), (path, asked)
                assert again.headers["etag"] == etag
            other = client.get(path, headers={"Accept": accept, "If-None-Match": '"other"'})
            assert other.status_code == 200 and other.content == first.content
    json_tag = client.get(f"/simple/{ENV}/", headers={"Accept": JSON_V1}).headers["etag"]
    html_tag = client.get(f"/simple/{ENV}/", headers={"Accept": HTML_V1}).headers["etag"]
    assert json_tag != html_tag  # one ETag per representation
    before = client.get(f"/simple/{ENV}/fake-ext/").headers["etag"]
    publish(
        store,
        environment=ENV,
        request_key="req-new",
        wheel=make_wheel(tmp_path / "new", "Fake_Ext", "2.0"),
        manifest={},
        catalog=client.app.state.index_catalog,  # type: ignore[attr-defined]
    )
    after = client.get(f"/simple/{ENV}/fake-ext/", headers={"If-None-Match": before})
    assert after.status_code == 200
    assert after.headers["etag"] != before
    assert "fake_ext-2.0-py3-none-any.whl" in after.text


def test_index_config_is_pasteable() -> None:
    text = render_index_config("http://wheels.example:8000/", ENV, ["Flash_Attn", "abi-dep"])
    url = f"http://wheels.example:8000/simple/{ENV}/"
    assert (
        f'[[tool.uv.index]]\nname = "wheelwright"\nurl = "{url}"\nexplicit = true\n\n'
        '[tool.uv.sources]\nabi-dep = { index = "wheelwright" }\n'
        'flash-attn = { index = "wheelwright" }\n'
    ) in text
    config = tomllib.loads(render_uv_config("http://h", ENV, ["flash-attn"]))
    assert config["tool"]["uv"]["index"] == [
        {"name": "wheelwright", "url": f"http://h/simple/{ENV}/", "explicit": True}
    ]
    assert f"pip install --no-deps --only-binary :all: --index-url {url} " in text
    assert "--extra-index-url" not in text  # pip would take a same-named PyPI project
    with pytest.raises(InvalidRequestError, match="environment name"):
        render_index_config("http://h", "Not An Env", [])


def test_project_json_says_what_verify_proved(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    verify = {
        "imported": ["cudafix"],
        "cuda": {"arch_list": "9.0", "sass": ["sm_90"], "ptx": [], "modules": {"x.so": {}}},
        "gpu": {"present": False, "kernel_run": False, "reason": "no GPU in the verify stage"},
    }
    for key, (name, manifest) in enumerate([("cudafix", {"verify": verify}), ("plain", {})]):
        publish(
            store,
            environment=ENV,
            request_key=f"req{key}",
            wheel=make_wheel(tmp_path / str(key), name, "1.0"),
            manifest=manifest,
        )
    settings = Settings(home=tmp_path)
    with TestClient(create_app(settings, store=store)) as client:
        entry = client.get(f"/simple/{ENV}/cudafix/", headers={"Accept": JSON_V1}).json()
        plain = client.get(f"/simple/{ENV}/plain/", headers={"Accept": JSON_V1}).json()
    assert entry["files"][0]["_wheelwright"] == {
        "verified": {
            "cuda": {"arch_list": "9.0", "sass": ["sm_90"], "ptx": []},
            "gpu": {"kernel_run": False, "reason": "no GPU in the verify stage"},
        }
    }
    assert "_wheelwright" not in plain["files"][0]
    parsed = ProjectPage.from_json_data(entry, base_url="http://h/simple/env/cudafix/")
    assert parsed.packages[0].filename.startswith("cudafix-1.0")  # clients ignore the extra key


def test_readyz_fails_while_the_catalog_cannot_answer(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    client = TestClient(create_app(settings, store=LocalStore(tmp_path / "store")))
    assert client.get("/readyz").json()["checks"]["catalog"] == "ok"
    catalog = open_catalog(settings)
    with catalog.engine.begin() as conn:
        conn.execute(text("UPDATE catalog_state SET filled_us = NULL"))  # as if never filled
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "not filled" in answer.json()["checks"]["catalog"]
    with catalog.engine.begin() as conn:
        conn.execute(text("DROP TABLE catalog_state"))  # a database that does not answer
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "does not answer" in answer.json()["checks"]["catalog"]
