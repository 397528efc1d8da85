"""The dashboard's pure parts: log pages, the stage timeline, the overview, session cookies."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from service.config import ApiToken, AuthSettings
from service.dashboard import logs
from service.dashboard.overview import overview
from service.dashboard.session import _from_session, session_value
from service.dashboard.views import cache_outcome, duration, timeline
from service.models import BuildRecord, StageTiming, parse_request
from service.store import LocalStore

REQUEST = parse_request({"source": {"kind": "requirement", "requirement": "six==1.16.0"}})


def _record(**fields: object) -> BuildRecord:
    base: dict[str, object] = {
        "id": "b1",
        "request": REQUEST,
        "request_key": "k",
        "environment": "cpu-py311-x",
        "queue": "cpu",
        "project": "six",
        "created_at": 1000.0,
    }
    return BuildRecord.model_validate({**base, **fields})


def test_log_lines_are_shown_as_plain_text() -> None:
    assert logs.clean("\x1b[1;32mok\x1b[0m done\n").text == "ok done"
    assert logs.clean("10%\r50%\r100%").text == "100%"
    # colour is left out, every other control shown as the CLI and the log endpoint show it
    assert logs.clean("a\x07b\x1b]0;title\x07c").text == "a^Gb^[]0;title^Gc"
    # a line of a new log comes shown already (`service.printable`): its colour goes too
    assert logs.clean("^[[32mcompiling^[[0m unit 3 <k.cu>").text == "compiling unit 3 <k.cu>"
    long = logs.clean("x" * 5000)
    assert long.text.endswith("(3000 more characters)") and len(long.text) < 2100
    assert logs.clean("===> [build] start (network off)").kind == "stage"
    assert logs.clean("<=== [build] FAILED in 2.0s").kind == "error"
    assert logs.clean("!! [build] BuildError: boom").kind == "error"
    assert logs.clean("plain").kind == ""


def test_a_stored_log_is_read_a_page_at_a_time(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    lines = [f"line {n} " + "y" * (n % 300) for n in range(20_000)]
    body = "\n".join(lines) + "\n"
    store.put("logs/builds/b1.log", body.encode())
    last = logs.stored_page(store, "logs/builds/b1.log", None, None)
    assert last.start is not None and last.end is not None
    assert last.size == len(body) and last.end == last.size
    assert last.end - last.start <= logs.PAGE_BYTES
    assert last.lines[-1].text == lines[-1]
    assert body[last.start - 1] == "\n"  # a page starts at a line start
    # walking from the start, page after page, gives back every line once
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = logs.stored_page(store, "logs/builds/b1.log", offset, None)
        assert page.end is not None and page.end - (page.start or 0) <= logs.PAGE_BYTES
        seen += [line.text for line in page.lines]
        offset = page.later
    assert seen == lines
    # the page before the last one ends where it starts
    earlier = logs.stored_page(store, "logs/builds/b1.log", last.earlier, last.start)
    assert earlier.end == last.start
    assert earlier.lines[-1].text == lines[lines.index(last.lines[0].text) - 1]
    # an offset inside a line moves to the next line start
    inside = logs.stored_page(store, "logs/builds/b1.log", 3, None)
    assert inside.lines[0].text == lines[1]


def test_a_log_without_line_ends_is_still_cut_into_pages(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("logs/builds/b2.log", b"z" * (3 * logs.PAGE_BYTES))
    page = logs.stored_page(store, "logs/builds/b2.log", None, None)
    assert page.start is not None and page.end is not None
    assert page.end - page.start <= logs.PAGE_BYTES
    assert len(page.lines) <= 1


def test_durations_read_like_a_person_writes_them() -> None:
    assert duration(4.21) == "4.2s"
    assert duration(185) == "3m 05s"
    assert duration(7260) == "2h 01m"
    assert duration(None) == ""


def test_the_timeline_places_stages_end_to_end() -> None:
    stages = [
        StageTiming(name="fetch", seconds=2.0, network=True, ok=True),
        StageTiming(name="runtime", seconds=6.0, network=True, ok=True),
        StageTiming(name="build_deps", seconds=None, network=True),
    ]
    running = _record(state="running", started_at=100.0, stages=stages)
    drawn = timeline(running, now=110.0)
    by_name = {bar.name: bar for bar in drawn.bars}
    assert [b.name for b in drawn.bars] == [
        "fetch",
        "runtime",
        "build_deps",
        "build",
        "verify",
        "publish",
    ]
    assert by_name["build_deps"].status == "running" and by_name["build_deps"].label == "2.0s"
    assert by_name["build"].status == "pending" and not by_name["build"].network
    assert by_name["fetch"].x < by_name["runtime"].x < by_name["build_deps"].x
    assert by_name["runtime"].width == pytest.approx(3 * by_name["fetch"].width)
    assert "build_deps running 2.0s" in drawn.description
    failed = _record(
        state="failed",
        started_at=100.0,
        finished_at=103.0,
        stages=[StageTiming(name="fetch", seconds=3.0, network=True, ok=False)],
    )
    assert [(b.name, b.status) for b in timeline(failed).bars] == [("fetch", "failed")]


def test_cache_outcome_of_a_build() -> None:
    assert cache_outcome(_record(state="running")) == ""
    assert cache_outcome(_record(state="succeeded")) == "hit"  # no stage ran: already published
    built = _record(state="succeeded", stages=[StageTiming(name="build", seconds=1.0)])
    assert cache_outcome(built) == "miss"


def test_overview_counts_days_and_medians() -> None:
    now = time.time()
    done = [StageTiming(name="build", seconds=1.0)]
    records = [
        _record(
            id=f"b{n}",
            state="succeeded",
            created_at=now - 60,
            started_at=now - 60,
            finished_at=now - 60 + 10 * (n + 1),
            stages=done,
        )
        for n in range(3)
    ] + [_record(id="old", state="failed", created_at=now - 3 * 86400)]
    figures = overview(records, {"cache_hit": 3, "cache_miss": 1}, now=now)
    assert figures.days[-1].total == 3 and figures.days[-4].total == 1
    assert figures.hit_rate == 0.75
    assert [(e.environment, e.label, e.builds) for e in figures.environments] == [
        ("cpu-py311-x", "20.0s", 3)
    ]


def test_session_cookies_are_signed_per_token_and_expire() -> None:
    alice = ApiToken(
        name="alice", token=SecretStr("s3cret-alice-0123456789abcdef"), scopes=("read",)
    )
    auth = AuthSettings(tokens=(alice,))
    value = session_value(alice)
    assert "s3cret" not in value
    viewer = _from_session(auth, value)
    assert viewer is not None and viewer.name == "alice" and viewer.may("read")
    assert not viewer.may("build")
    assert _from_session(auth, value[:-1] + ("0" if value[-1] != "0" else "1")) is None
    assert _from_session(auth, session_value(alice, now=time.time() - 13 * 3600)) is None
    rotated = ApiToken(
        name="alice", token=SecretStr("new-secret-0123456789abcdef"), scopes=("read",)
    )
    assert _from_session(AuthSettings(tokens=(rotated,)), value) is None
