"""`wheelwright admin reindex` (the catalog rebuilt from a local store's manifests, with
progress on stderr and a summary on stdout; a broken manifest skipped) and `index-config`, which
reads the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.artifacts import publish
from service.cli import app
from service.config import load_settings
from service.index.sql import open_catalog
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel

ENV = "cpu-py311-torch2.13.0-0a0b0c0d"


def test_reindex_lists_every_manifest_and_drops_what_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHEELWRIGHT_HOME", str(tmp_path))
    monkeypatch.delenv("WHEELWRIGHT_CONFIG", raising=False)
    store = LocalStore(tmp_path / "store")
    for number in range(3):
        wheel = make_wheel(tmp_path / f"w{number}", "pkg", f"1.{number}")
        publish(store, environment=ENV, request_key=f"r{number}", wheel=wheel, manifest={})
    (tmp_path / "store" / "builds" / ENV / "broken.json").write_text("{not json")
    done = CliRunner().invoke(app, ["admin", "reindex", "--workers", "2"])
    assert done.exit_code == 0, done.output
    assert "read 4/4 manifests" in done.output
    assert "reindexed 4 manifests" in done.output
    assert "3 listed, 1 skipped, 0 removed" in done.output
    catalog = open_catalog(load_settings())
    listed = catalog.project_files(ENV, "pkg")
    assert listed is not None and [f.version for f in listed] == ["1.0", "1.1", "1.2"]
    store.delete(f"builds/{ENV}/r0.json")
    again = CliRunner().invoke(app, ["admin", "reindex"])
    assert "3 manifests" in again.output and "2 listed, 1 skipped, 1 removed" in again.output
    listed = catalog.project_files(ENV, "pkg")
    assert listed is not None and [f.version for f in listed] == ["1.1", "1.2"]


def test_a_database_url_that_is_not_one_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHEELWRIGHT_HOME", str(tmp_path))
    monkeypatch.setenv("WHEELWRIGHT_DATABASE__URL", "mysql://db/x")
    done = CliRunner().invoke(app, ["admin", "reindex"])
    assert done.exit_code == 3
    assert "database.url" in done.output and "'mysql' is not supported" in done.output


def test_index_config_names_the_projects_the_catalog_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHEELWRIGHT_HOME", str(tmp_path))
    monkeypatch.delenv("WHEELWRIGHT_CONFIG", raising=False)
    catalog = open_catalog(load_settings())
    store = LocalStore(tmp_path / "store")
    for name in ("Flash_Attn", "abi-dep"):
        wheel = make_wheel(tmp_path / name, name, "1.0")
        publish(
            store,
            environment=ENV,
            request_key=name.lower(),
            wheel=wheel,
            manifest={},
            catalog=catalog,
        )
    done = CliRunner().invoke(app, ["index-config", ENV, "--url", "http://h"])
    assert done.exit_code == 0, done.output
    assert 'abi-dep = { index = "wheelwright" }' in done.output
    assert 'flash-attn = { index = "wheelwright" }' in done.output
    unknown = CliRunner().invoke(app, ["index-config", "cpu-py311-none-00000000"])
    assert unknown.exit_code != 0 and "no build environment named" in unknown.output
