"""A project's [tool.uv] is the caller's data: what it names is checked before uv runs."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import Settings
from service.egress import EgressPolicy
from service.errors import InvalidRequestError
from service.project.resolve import project_lock, runtime_blocker
from service.project.trust import check_project, uv_environment
from tests.loopback import Origin, serving

HEAD = """\
[project]
name = "demo"
version = "0"
requires-python = ">=3.10"
dependencies = ["beta"]
"""


def policy(settings: Settings) -> EgressPolicy:
    return EgressPolicy.from_settings(settings)


def _project(tmp_path: Path, tool_uv: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "pyproject.toml").write_text(HEAD + textwrap.dedent(tool_uv), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("tool_uv", "named"),
    [
        ('[tool.uv]\ncache-dir = "/var/lib/wheelwright"\n', "cache-dir"),
        ('[tool.uv]\nkeyring-provider = "subprocess"\n', "keyring-provider"),
        ('[tool.uv]\npython-install-mirror = "file:///srv"\n', "python-install-mirror"),
        ('[[tool.uv.index]]\nname = "x"\nurl = "file:///etc"\n', "index 'file:///etc'"),
        ('[tool.uv]\nindex-url = "/etc"\n', "index '/etc'"),
        ('[tool.uv]\nextra-index-url = ["ftp://example.org/simple"]\n', "ftp://example.org"),
        ('[tool.uv]\nfind-links = ["/etc"]\n', "find-links '/etc'"),
        ('[tool.uv]\nfind-links = ["file:///root"]\n', "find-links 'file:///root'"),
        ('[tool.uv]\nfind-links = ["../../etc"]\n', "find-links '../../etc'"),
        ('[tool.uv.sources]\nbeta = { path = "/srv/secret" }\n', "beta is a path source"),
        ('[tool.uv.sources]\nbeta = [{ path = "../beta" }]\n', "beta is a path source"),
        ('[tool.uv.sources]\nbeta = { git = "ext::sh -c id" }\n', "[tool.uv.sources] beta"),
        ('[tool.uv.sources]\nbeta = { git = "file:///srv/repo" }\n', "allow_file_git"),
        ('[tool.uv.sources]\nbeta = { url = "file:///etc/passwd" }\n', "http(s) URL"),
    ],
)
def test_what_would_reach_past_the_project_is_refused_by_name(
    tmp_path: Path, settings: Settings, tool_uv: str, named: str
) -> None:
    folder = _project(tmp_path, tool_uv)
    where = str(folder / "pyproject.toml")
    with pytest.raises(InvalidRequestError, match=r"pyproject\.toml") as info:
        project_lock(folder, settings, egress=policy(settings))  # refused before uv runs
    assert named in str(info.value)
    with pytest.raises(InvalidRequestError) as again:
        runtime_blocker(
            folder / "pyproject.toml",
            ("alpha==1",),
            settings,
            egress=policy(settings),
            python="3.11",
            index=None,
        )
    assert named in str(again.value) and where in str(again.value)


def test_web_indexes_allowed_folders_and_index_or_git_sources_pass(
    tmp_path: Path, settings: Settings
) -> None:
    wheels = tmp_path / "wheels"
    (wheels / "team").mkdir(parents=True)
    sources = {"find_links": (wheels,), "private_hosts": ("127.0.0.1:8080",)}
    allowed = settings.model_copy(update={"sources": settings.sources.model_copy(update=sources)})
    data = {
        "tool": {
            "uv": {
                "index": [
                    {"name": "ours", "url": "https://ww.example.org/simple/", "explicit": True}
                ],
                "extra-index-url": ["http://127.0.0.1:8080/simple/"],
                "find-links": [str(wheels / "team"), f"file://{wheels}", "https://example.org/w/"],
                "sources": {
                    "beta": {"index": "ours"},
                    "gamma": {"git": "https://github.com/example/gamma", "rev": "abc"},
                    "delta": [{"url": "https://example.org/delta-1.tar.gz"}],
                },
                "extra-build-dependencies": {"beta": ["torch"]},
            }
        }
    }
    check_project(data, allowed, egress=policy(allowed), where="pyproject.toml")
    with pytest.raises(InvalidRequestError, match="find-links"):  # no folder allowed there
        check_project(data, settings, egress=policy(allowed), where="pyproject.toml")
    with pytest.raises(InvalidRequestError, match=r"index 'http://127\.0\.0\.1:8080/simple/'"):
        check_project(data, allowed, egress=policy(settings), where="pyproject.toml")


def test_a_link_into_an_allowed_folder_does_not_open_another(
    tmp_path: Path, settings: Settings
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "escape").symlink_to("/etc")
    allowed = settings.model_copy(
        update={"sources": settings.sources.model_copy(update={"find_links": (wheels,)})}
    )
    data = {"tool": {"uv": {"find-links": [str(wheels / "escape")]}}}
    with pytest.raises(InvalidRequestError, match="escape"):
        check_project(data, allowed, egress=policy(allowed), where="pyproject.toml")


def test_uv_runs_with_the_service_s_cache_and_no_downloads_or_keyring(
    tmp_path: Path, settings: Settings
) -> None:
    env = uv_environment(settings, tmp_path)
    assert env["UV_CACHE_DIR"] == str(settings.home / "uv-cache")
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    assert env["UV_KEYRING_PROVIDER"] == "disabled"
    assert env["XDG_CONFIG_HOME"] == str(tmp_path)


@pytest.fixture
def loopback_index() -> Iterator[Origin]:
    """An index on this machine's loopback that answers 404 and keeps who asked."""
    with serving(Origin(status=404)) as index:
        yield index


def test_uv_on_the_service_s_machine_reaches_no_private_index_the_project_names(
    tmp_path: Path, settings: Settings, loopback_index: Origin
) -> None:
    """An index on this host (or its networks) named by the project is refused before uv
    runs, naming it, never asked; the operator's `sources.private_hosts` lets that host and
    port in, and uv then locks through the egress proxy."""
    url = f"http://127.0.0.1:{loopback_index.port}/simple"
    tool_uv = f'[[tool.uv.index]]\nname = "mine"\nurl = "{url}"\ndefault = true\n'
    folder = _project(tmp_path, tool_uv)
    with pytest.raises(InvalidRequestError, match="refused before uv runs") as refused:
        project_lock(folder, settings, egress=policy(settings))
    assert f"index {url!r}" in str(refused.value)
    assert "127.0.0.1 is 127.0.0.1, an address of this host" in str(refused.value)
    assert loopback_index.paths == []

    entry = f"127.0.0.1:{loopback_index.port}"
    sources = settings.sources.model_copy(update={"private_hosts": (entry,)})
    allowed = settings.model_copy(update={"sources": sources})
    with pytest.raises(InvalidRequestError, match="beta"):  # asked, and it has no beta
        project_lock(folder, allowed, egress=policy(allowed))
    assert loopback_index.paths and loopback_index.paths[0].startswith("/simple/beta/")
