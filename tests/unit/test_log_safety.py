"""Stage output is bounded and clean: long lines cut with a marker in linear time, secrets
masked, and a failed stage names the container limit it hit."""

from __future__ import annotations

import time

from service.config import Settings
from service.printable import printable, without_colour
from service.redact import MASK, Redactor, environment_secrets
from worker.executors.limits import named_limit
from worker.executors.lines import LineSplitter


def test_lines_split_across_chunks_and_bytes() -> None:
    lines = LineSplitter(100)
    assert lines.feed_bytes(b"one\ntw") == ["one"]
    assert lines.feed_bytes("o\r\nth\u00e9".encode()[:-1]) == ["two"]  # half a UTF-8 char
    assert lines.feed_bytes(b"\xa9\n") == ["th\u00e9"]
    assert lines.feed("last") == []
    assert lines.finish() == ["last"]
    assert lines.finish() == []


def test_a_carriage_return_ends_a_line_as_a_newline_does() -> None:
    lines = LineSplitter(100)
    assert lines.feed("10%\r50%\r") == ["10%", "50%"]
    assert lines.feed("\n") == []  # the \r\n split across two chunks is one line end
    assert lines.feed("\nnext\r\nlast") == ["", "next"]
    assert lines.finish() == ["last"]


HOSTILE = (
    "\x1b]52;c;ZWNobyBvd25lZA==\x07"  # OSC 52: write the reader's clipboard
    "\x1b[1A\x1b[2K"  # cursor up, erase the line
    "\x1b]0;innocent title\x07"  # the window title
    "\x9b31m\x7f\x00done\tok"  # a C1 CSI, DEL, NUL; a tab stays
)


def test_control_characters_are_shown_in_caret_notation_and_the_text_stays() -> None:
    shown = printable(HOSTILE + "\nnext\r")
    assert shown == (
        "^[]52;c;ZWNobyBvd25lZA==^G^[[1A^[[2K^[]0;innocent title^G<U+009B>31m^?^@done\tok\nnext^M"
    )
    assert not any((ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) < 0xA0 for c in shown)
    assert printable(shown) == shown  # idempotent: a second reader changes nothing
    assert printable("naïve — 東京 ^[ plain") == "naïve — 東京 ^[ plain"
    assert without_colour("\x1b[1;32mok\x1b[0m \x1b[2K") == "ok ^[[2K"


def test_a_long_line_is_cut_with_a_marker() -> None:
    lines = LineSplitter(10)
    assert lines.feed("x" * 25) == []
    assert lines.feed("y" * 5 + "\nnext") == ["x" * 10 + " [... line cut: 20 more characters]"]
    assert lines.finish() == ["next"]


def test_a_gigantic_line_costs_linear_time() -> None:
    lines = LineSplitter(16_384)
    chunk = b"z" * 65_536
    started = time.perf_counter()
    for _ in range(2_000):  # 128 MiB without a newline
        assert lines.feed_bytes(chunk) == []
    (line,) = lines.finish()
    assert time.perf_counter() - started < 20
    assert line.endswith(f"[... line cut: {2_000 * 65_536 - 16_384} more characters]")


def test_secrets_are_masked() -> None:
    env = {
        "HTTPS_PROXY": "http://alice:pr0xy-pass@proxy.corp:3128",
        "GITHUB_TOKEN": "ghp_abcdefghijkl",
        "PATH": "/usr/bin",
        "SHORT_TOKEN": "abc",  # too short to mask without mangling every log
    }
    settings = Settings(
        auth={
            "tokens": [
                {"name": "ci", "token": "ci-secret-token-0123456789abc", "scopes": ["build"]}
            ]
        },  # type: ignore[arg-type]
        webhooks={"github_secret": "hook-secret-1"},  # type: ignore[arg-type]
    )
    redact = Redactor.for_service(settings, env)
    line = (
        "proxy http://alice:pr0xy-pass@proxy.corp:3128 token ghp_abcdefghijkl"
        " ci-secret-token-0123456789abc hook-secret-1 /usr/bin abc"
    )
    assert (
        redact(line)
        == f"proxy http://{MASK}@proxy.corp:3128 token {MASK} {MASK} {MASK} /usr/bin abc"
    )
    assert "pr0xy-pass" in environment_secrets(env)
    assert Redactor([])("nothing to hide") == "nothing to hide"


def test_the_limit_hit_is_named() -> None:
    assert "memory limit (1024 bytes)" in (named_limit(True, "", 1024, 64) or "")
    pids = named_limit(False, "RuntimeError: can't start new thread", 1024, 64)
    assert pids is not None and "process limit (pids_limit 64" in pids
    assert named_limit(False, "error: boom", 1024, 64) is None
