"""The project build pages' pure parts: rows, source and target, durations, the package table,
the lost state, and which page of project builds the list shows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.dashboard import project_views as pv
from service.errors import InvalidRequestError
from service.store import StoredObject
from tests.projectstates import node, packages_of

ID = "0123456789abcdef0123456789abcdef"


def _state(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": ID,
        "state": "running",
        "environment": "cpu-plain",
        "target": {"kind": "cpu", "python": "3.11"},
        "source": {"kind": "upload", "name": "demo.tar.gz"},
        "input": "pyproject.toml",
        "packages": [],
        "failed": [],
        "error": None,
        "created_at": 1000.0,
        "finished_at": None,
    }
    return {**base, **fields}


def test_a_row_names_source_environment_counts_and_times() -> None:
    packages = packages_of(
        node("alpha", "1.0", 1, "built", build_id="b1", seconds=3),
        node("beta", "2.0", 2, "failed", build_id="b2", seconds=1, error="boom"),
        node("gamma", "0.1", 3, "not built", note="needs beta, which was not built"),
    )
    state = _state(state="failed", packages=packages, failed=["beta", "gamma"], finished_at=1185.0)
    row = pv.project_row(state)
    assert (row.id, row.state, row.tone, row.terminal) == (ID, "failed", "bad", True)
    assert (row.source, row.input, row.environment) == (
        "demo.tar.gz",
        "pyproject.toml",
        "cpu-plain",
    )
    assert row.linked_environment == "cpu-plain"
    assert (row.packages, row.failed) == (3, 2)
    assert row.created == "1970-01-01 00:16:40 UTC"
    assert row.duration == "3m 05s"


def test_a_running_project_build_lasts_until_now() -> None:
    row = pv.project_row(_state(), now=1042.0)
    assert (row.state, row.tone, row.terminal, row.duration) == ("running", "run", False, "42.0s")
    assert pv.project_row(_state(state="queued"), now=1001.0).tone == "idle"


def test_a_lost_project_build_shows_as_lost() -> None:
    error = "lost: the service process running it stopped (no sign for 120 s); submit it again"
    assert pv.shown_state(_state(state="failed", error=error, lost=True)) == "lost"
    assert pv.shown_state(_state(state="failed", error=error)) == "failed"  # the flag, not words
    assert pv.project_row(_state(state="failed", error=error)).tone == "bad"
    assert pv.shown_state(_state(state="failed", error="not built: beta")) == "failed"
    assert pv.shown_state(_state(state="running", error=error)) == "running"


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ({"kind": "upload", "name": "demo.tar.gz"}, "demo.tar.gz"),
        ({"kind": "upload"}, "an uploaded archive"),
        (
            {"kind": "git", "url": "https://git.example/acme/app.git", "ref": "main"},
            "https://git.example/acme/app.git @ main",
        ),
        (
            {"kind": "git", "url": "https://git.example/a.git", "ref": "v1", "commit": "ab" * 20},
            f"https://git.example/a.git @ v1 ({'ab' * 6})",
        ),
        ({}, "not recorded"),
        ("not a mapping", "not recorded"),
    ],
)
def test_the_source_is_an_upload_name_or_a_git_url_at_its_ref(source: object, text: str) -> None:
    assert pv.source_text(source) == text


def test_the_target_reads_as_a_person_says_it() -> None:
    assert pv.target_text({"kind": "cpu", "python": "3.11"}) == "cpu, Python 3.11"
    cuda = {"kind": "cuda", "cuda": "12.8", "python": "3.12", "image": "img:1"}
    assert pv.target_text(cuda) == "cuda 12.8, Python 3.12, image img:1"
    assert pv.target_text(None) == "cpu"


def test_the_package_table_keeps_build_order_and_links_only_real_build_ids() -> None:
    packages = packages_of(
        node("alpha", "1.0", 1, "cached", build_id="0123abcd0123abcd", wheel="alpha-1.0-x.whl"),
        node("beta", "2.0", 2, "running", stage="build", build_id="../../etc", seconds=65),
        node("<script>x</script>", "3", 2, "waiting"),
    )
    rows = pv.package_rows(_state(packages=packages))
    assert [r.name for r in rows] == ["alpha", "beta", "<script>x</script>"]  # escaped by Jinja
    alpha, beta, hostile = rows
    assert (alpha.wave, alpha.state, alpha.tone, alpha.build_id) == (
        "1",
        "cached",
        "ok",
        "0123abcd0123abcd",
    )
    assert alpha.wheel == "alpha-1.0-x.whl" and alpha.time == ""
    assert (beta.stage, beta.tone, beta.build_id) == ("build", "run", None)
    assert beta.time.startswith("1m 0")
    assert (hostile.tone, hostile.time, hostile.cause) == ("idle", "", "")


def test_the_failures_are_named_with_their_causes() -> None:
    packages = packages_of(
        node("alpha", "1.0", 1, "built"),
        node("beta", "2.0", 2, "failed", error="build failed: error: command 'gcc' failed"),
        node("gamma", "0.1", 3, "not built", note="needs beta, which was not built"),
    )
    state = _state(packages=packages, failed=["beta", "gamma", "vanished"])
    found = pv.failures(state)
    assert [(f.name, f.state, f.cause) for f in found] == [
        ("beta", "failed", "build failed: error: command 'gcc' failed"),
        ("gamma", "not built", "needs beta, which was not built"),
    ]
    assert pv.failed_names(_state(failed="beta")) == []


def test_a_state_of_the_wrong_shape_is_shown_not_trusted() -> None:
    state = {"id": ID, "state": 3, "packages": [{"wave": True}, "x"], "created_at": "yesterday"}
    row = pv.project_row(state)
    assert (row.state, row.packages, row.created, row.duration) == ("unknown", 1, "", "")
    assert pv.package_rows(state)[0].name == "?"
    assert pv.project_row(_state(environment="../../x")).linked_environment is None


def _obj(ident: str, written: float) -> StoredObject:
    when = datetime.fromtimestamp(written, UTC)
    return StoredObject(key=f"projects/{ident}.json", size=10, last_modified=when)


def test_the_list_pages_through_the_last_written_project_builds() -> None:
    ids = [f"{n:032x}" for n in range(7)]
    objects = [_obj(i, 1000.0 + n) for n, i in enumerate(ids)]
    objects += [StoredObject(key="projects/not-an-id.json", size=1)]
    objects += [StoredObject(key=f"projects/{ids[0]}.json.tmp", size=1)]
    page, older = pv.recent(objects, limit=3)
    assert [pv.project_id(o.key) for o in page] == [ids[6], ids[5], ids[4]]
    assert older is not None
    page, older = pv.recent(objects, limit=3, before=older)
    assert [pv.project_id(o.key) for o in page] == [ids[3], ids[2], ids[1]]
    assert older is not None
    page, older = pv.recent(objects, limit=3, before=older)
    assert [pv.project_id(o.key) for o in page] == [ids[0]]
    assert older is None


def test_project_builds_written_at_the_same_moment_are_all_listed() -> None:
    ids = [f"{n:032x}" for n in range(5)]
    objects = [_obj(i, 1000.5) for i in ids]
    seen: list[str] = []
    before = None
    for _ in range(5):
        page, before = pv.recent(objects, limit=2, before=before)
        seen += [str(pv.project_id(o.key)) for o in page]
        if before is None:
            break
    assert sorted(seen) == ids and len(seen) == 5


@pytest.mark.parametrize("cursor", ["", "yesterday", "1.5-xyz", f"1.5-{ID}-x", "<b>"])
def test_a_bad_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidRequestError, match="is not a position"):
        pv.recent([], limit=3, before=cursor)


def test_a_page_is_shown_newest_first() -> None:
    states = [_state(id="a", created_at=5.0), _state(id="b", created_at=9.0), _state(id="c")]
    assert [s["id"] for s in pv.newest_first(states)] == ["c", "b", "a"]  # c: 1000.0
