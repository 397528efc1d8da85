"""`wheelwright project submit` refuses what it cannot send, naming it, before or without a
service: a path that is neither a project nor an archive, a folder with no pyproject.toml, a
server that does not answer."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from service.errors import InvalidRequestError, QueueUnavailableError

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers there


def submit(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["project", "submit", *args, "--server", NOWHERE])
    return done.exit_code, done.output


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    code, output = submit(str(tmp_path / "nope"))
    assert code == InvalidRequestError.exit_code
    assert "is neither a folder, an archive nor a git URL" in output


def test_a_folder_without_pyproject_is_refused(tmp_path: Path) -> None:
    code, output = submit(str(tmp_path))
    assert code == InvalidRequestError.exit_code
    assert "has no pyproject.toml" in output


def test_a_server_that_does_not_answer_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0.1"\n')
    code, output = submit(str(tmp_path), "--environment", "cpu-plain")
    assert code == QueueUnavailableError.exit_code
    assert f"cannot reach {NOWHERE}" in output
