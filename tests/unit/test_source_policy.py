"""Sources a request may name: git URLs and refs git cannot misread, allow-listed host folders,
and a git that runs with a hardened configuration (real git, local repositories)."""

from __future__ import annotations

import shlex
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from service.config import Settings
from service.egress import EgressPolicy
from service.errors import FetchError, InvalidRequestError, SourceNotFoundError
from service.models import BuildRequest, parse_request
from service.policy import check_request
from service.specs import parse_spec
from worker import ssh_tunnel
from worker.git import Git

GOOD_URLS = [
    "https://github.com/org/repo",
    "https://github.com/org/repo.git",
    "ssh://git@github.com/org/repo.git",
    "ssh://git@gitlab.example.com:2222/group/sub/repo",
    "file:///srv/git/repo",
]
BAD_URLS = [
    ("--upload-pack=touch /tmp/pwned", "whitespace"),
    ("--upload-pack=id", "starts with '-'"),
    ("-oProxyCommand=id", "starts with '-'"),
    ("ext::sh -c touch% /tmp/pwned", "whitespace"),
    ("ext::sh", "transport helper"),
    ("fd::3", "transport helper"),
    ("http://github.com/org/repo", "must start with one of"),
    ("git://github.com/org/repo", "must start with one of"),
    ("git@github.com:org/repo.git", "must start with one of"),
    ("ssh://-oProxyCommand=id/x", "bad host name"),
    ("https://user:secret@github.com/org/repo", "credentials"),
    ("file://host/srv/repo", "file:///absolute/path"),
    ("https://github.com/", "no repository path"),
    ("https://github.com/org/repo\n--x", "control characters"),
    ("https://github.com/org/../../etc", "'..'"),
]


def git_request(url: str, ref: str = "HEAD") -> dict[str, object]:
    return {"source": {"kind": "git", "url": url, "ref": ref}}


@pytest.mark.parametrize("url", GOOD_URLS)
def test_plain_git_urls_pass(url: str) -> None:
    assert parse_request(git_request(url)).source.model_dump()["url"] == url


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_git_urls_git_could_misread_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=f"source.git.url: .*{message}"):
        parse_request(git_request(url))


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "-h", "a..b", "main lock", ".hidden", "x~1"])
def test_refs_git_could_misread_are_refused(ref: str) -> None:
    with pytest.raises(InvalidRequestError, match="is not a plain branch or tag name"):
        parse_request(git_request("https://github.com/org/repo", ref))


def test_spec_with_option_url_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="starts with '-'"):
        parse_spec("git+--upload-pack=id@main")


def test_file_git_needs_the_setting() -> None:
    request = parse_request(git_request("file:///srv/git/repo"))
    with pytest.raises(InvalidRequestError, match="file:// sources are not allowed"):
        check_request(request, Settings())
    check_request(request, Settings(sources={"allow_file_git": True}))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["relative/dir", "file:///etc", "/opt/../etc", "ftp://x/y"])
def test_find_links_must_be_urls_or_absolute_folders(bad: str) -> None:
    with pytest.raises(InvalidRequestError, match="find-links"):
        parse_request({**git_request("https://github.com/o/r"), "index": {"find_links": [bad]}})


def test_find_links_only_in_allowed_folders(tmp_path: Path) -> None:
    allowed = tmp_path / "wheels"
    (allowed / "sub").mkdir(parents=True)
    (tmp_path / "escape").symlink_to(tmp_path.parent)
    settings = Settings(sources={"find_links": [allowed]})  # type: ignore[arg-type]

    def request(*links: str) -> BuildRequest:
        source = {"kind": "requirement", "requirement": "a==1"}
        return parse_request({"source": source, "index": {"find_links": links}})

    check_request(request(str(allowed), str(allowed / "sub"), "https://x/w/"), settings)
    for bad in ("/", "/etc", str(tmp_path), str(tmp_path / "escape"), str(allowed) + "2"):
        with pytest.raises(InvalidRequestError, match="is not an allowed folder on this service"):
            check_request(request(bad), settings)
    with pytest.raises(InvalidRequestError, match="none are configured"):
        check_request(request(str(allowed)), Settings())


def test_find_links_of_configured_environments_are_allowed(tmp_path: Path) -> None:
    settings = Settings(
        environments={"e": {"index": {"find_links": [str(tmp_path)]}}}  # type: ignore[dict-item]
    )
    links = {"find_links": [str(tmp_path)]}
    req = {"source": {"kind": "requirement", "requirement": "a==1"}, "index": links}
    check_request(parse_request(req), settings)


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _repo(path: Path, files: dict[str, str]) -> str:
    path.mkdir()
    _git("init", "-q", "-b", "main", cwd=path)
    for name, text in files.items():
        (path / name).write_text(text)
    _git("add", "-A", cwd=path)
    _git("commit", "-q", "-m", "x", cwd=path)
    return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=path, text=True).strip()


def test_hardened_git_resolves_and_checks_out(tmp_path: Path) -> None:
    commit = _repo(tmp_path / "repo", {"setup.py": "print('hi')\n"})
    git = Git(allow_file=True)
    url = f"file://{tmp_path / 'repo'}"
    assert git.resolve_ref(url, "main") == commit
    assert git.resolve_ref(url, "HEAD") == commit
    git.checkout(url, commit, tmp_path / "out")
    assert (tmp_path / "out" / "setup.py").read_text() == "print('hi')\n"


def test_hardened_git_refuses_file_transport_unless_allowed(tmp_path: Path) -> None:
    _repo(tmp_path / "repo", {"a": "1"})
    with pytest.raises(SourceNotFoundError, match="git ls-remote failed"):
        Git(allow_file=False).resolve_ref(f"file://{tmp_path / 'repo'}", "main")


def _with_submodule(tmp_path: Path, url: str) -> tuple[str, str]:
    """A repository with one submodule whose URL is `url`: the repository's URL and commit."""
    inner = _repo(tmp_path / "inner", {"y": "1"})
    repo = tmp_path / "repo"
    _repo(repo, {"setup.py": "print('hi')\n"})
    _git("update-index", "--add", "--cacheinfo", f"160000,{inner},sub", cwd=repo)
    (repo / ".gitmodules").write_text(f'[submodule "sub"]\n\tpath = sub\n\turl = {url}\n')
    _git("add", ".gitmodules", cwd=repo)
    _git("commit", "-q", "-m", "sub", cwd=repo)
    commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=repo, text=True).strip()
    return f"file://{repo}", commit


def test_hostile_submodule_transport_runs_nothing(tmp_path: Path) -> None:
    """A repository whose .gitmodules names an `ext::` command: the checkout fails, and the
    command never ran."""
    marker = tmp_path / "pwned"
    url, commit = _with_submodule(tmp_path, f"ext::sh -c touch% {marker}")
    with pytest.raises(SourceNotFoundError, match="git submodule failed"):
        Git(allow_file=True).checkout(url, commit, tmp_path / "out")
    assert not marker.exists()


def test_hardened_git_ignores_hooks_and_user_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user config that would run a command on checkout (a global hooksPath) is not read."""
    marker = tmp_path / "hooked"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "post-checkout").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (hooks / "post-checkout").chmod(0o755)
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f"[core]\n\thooksPath = {hooks}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    commit = _repo(tmp_path / "repo", {"a": "1"})
    Git(allow_file=True).checkout(f"file://{tmp_path / 'repo'}", commit, tmp_path / "out")
    assert not marker.exists()


class SshListener:
    """A TCP listener on loopback that counts who connects (and says it is an ssh server)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with suppress(OSError):
                conn.sendall(b"SSH-2.0-not-really\r\n")
            conn.close()


@pytest.fixture
def listener() -> Iterator[SshListener]:
    server = SshListener()
    yield server
    server.sock.close()


def _with_ssh_submodule(tmp_path: Path, port: int) -> tuple[str, str]:
    return _with_submodule(tmp_path, f"ssh://git@127.0.0.1:{port}/acme/sub.git")


def test_a_submodule_over_ssh_to_this_host_is_refused_and_never_reached(
    tmp_path: Path, listener: SshListener
) -> None:
    """The submodule's URL comes from the repository, not the request: its ssh goes through the
    egress proxy, which refuses this host's own addresses before anything connects."""
    url, commit = _with_ssh_submodule(tmp_path, listener.port)
    git = Git(allow_file=True, egress=EgressPolicy())
    refusal = r"git submodule failed: egress refused: 127\.0\.0\.1 is 127\.0\.0\.1"
    with pytest.raises(FetchError, match=refusal):
        git.checkout(url, commit, tmp_path / "out")
    assert listener.connections == 0


def test_a_submodule_over_ssh_to_an_allowed_host_is_reached_through_the_tunnel(
    tmp_path: Path, listener: SshListener
) -> None:
    url, commit = _with_ssh_submodule(tmp_path, listener.port)
    git = Git(allow_file=True, egress=EgressPolicy.allowing(f"127.0.0.1:{listener.port}"))
    with pytest.raises(SourceNotFoundError, match="git submodule failed"):  # not a real server
        git.checkout(url, commit, tmp_path / "out")
    assert listener.connections >= 1


def test_gits_ssh_arguments_become_a_tunnelled_ssh() -> None:
    argv = ssh_tunnel.ssh_argv(
        ["-o", "SendEnv=GIT_PROTOCOL", "-p", "2222", "git@git.example", "git-upload-pack 'a.git'"]
    )
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"]
    assert argv[4] == f"ProxyCommand={ssh_tunnel.command()} --tunnel git.example 2222"
    assert argv[5:] == [
        "-p",
        "2222",
        "-o",
        "SendEnv=GIT_PROTOCOL",
        "git@git.example",
        "git-upload-pack 'a.git'",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["git.example;touch /tmp/x", "cmd"],
        ["$(touch /tmp/x)", "cmd"],
        ["-oProxyCommand=touch /tmp/x", "git.example", "cmd"],
        ["-p", "22;id", "git.example", "cmd"],
        ["evil user@git.example", "cmd"],
        ["-p"],
        [],
    ],
)
def test_odd_ssh_arguments_are_refused(args: list[str]) -> None:
    with pytest.raises(ssh_tunnel.Refused):
        ssh_tunnel.ssh_argv(args)


def test_the_ssh_wrapper_runs_nothing_a_host_name_smuggles(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ran = subprocess.run(
        [*shlex.split(ssh_tunnel.command()), f"x;touch {marker}", "git-upload-pack 'a'"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert ran.returncode == 255
    assert "wheelwright egress: ssh:" in ran.stderr and "not a plain host name" in ran.stderr
    assert not marker.exists()
