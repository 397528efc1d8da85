"""git, run only by the worker and only with a hardened configuration.

The URL and ref were checked by `service.gitpolicy` when the request was made; here git itself is
held down as well, so a hostile repository or URL cannot reach past the fetch: no system or user
configuration, no hooks, no credential helpers, no transports but https and ssh (and file where
the settings allow it, for submodules too), no prompts, and every URL after `--`.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from service.egress import EgressPolicy, EgressProxy, through
from service.errors import FetchError, SourceNotFoundError
from service.gitpolicy import check_git_ref, check_git_url
from worker import ssh_tunnel
from worker.proxy import PROXY_VARS

#: Environment variables git may keep from the worker's: reaching the network and ssh keys.
KEPT_ENV = (
    "PATH",
    "HOME",
    "LANG",
    *PROXY_VARS,
    "SSH_AUTH_SOCK",
)
GIT_TIMEOUT_S = 1800


@dataclass(frozen=True)
class RefClass:
    """What a fetched commit is to its repository, as the clone shows it (the compiler cache's
    scope): the default branch or a tag (`shared`: the repository's own scope), or another
    ref, whose builds write a scope of their own named by `name` (`refs/heads/<branch>`, or
    `commit:<hash>` for a commit the ref it was asked by does not hold)."""

    kind: Literal["default-branch", "tag", "branch", "other"]
    name: str

    @property
    def shared(self) -> bool:
        return self.kind in ("default-branch", "tag")


def git_environment(allow_file: bool, ca_bundle: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV}
    env |= {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        "GIT_ALLOW_PROTOCOL": "https:ssh" + (":file" if allow_file else ""),
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_LFS_SKIP_SMUDGE": "1",
    }
    if ca_bundle is not None:
        env["GIT_SSL_CAINFO"] = str(ca_bundle)
    return env


def git_config(allow_file: bool) -> list[str]:
    settings = {
        "core.hooksPath": os.devnull,
        "core.fsmonitor": "false",
        "credential.helper": "",
        "protocol.allow": "never",
        "protocol.https.allow": "always",
        "protocol.ssh.allow": "always",
        "protocol.file.allow": "always" if allow_file else "never",
        "protocol.ext.allow": "never",
        "protocol.fd.allow": "never",
        "submodule.recurse": "false",
        "http.followRedirects": "initial",
        "ssh.variant": "ssh",  # git's ssh arguments as OpenSSH takes them, whatever runs it
    }
    return [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]


class Git:
    """One hardened git for one fetch. With `egress`, its https and its ssh (submodules at any
    depth included, ssh through `worker.ssh_tunnel`) go through an egress proxy: a host of this
    machine or its networks is refused unless the operator allows it (`service.egress`)."""

    def __init__(
        self,
        *,
        allow_file: bool,
        ca_bundle: Path | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.allow_file = allow_file
        self.env = git_environment(allow_file, ca_bundle)
        self.config = git_config(allow_file)
        self.egress = egress

    def run(self, *args: str, cwd: Path | None = None) -> str:
        if self.egress is None:
            return self._run(args, self.env, cwd, [])
        refused: list[str] = []
        with EgressProxy(None, self.egress, on_refused=refused.append) as proxy:
            env = through(proxy.url, self.env)
            env |= {"GIT_SSH_COMMAND": ssh_tunnel.command(), ssh_tunnel.PROXY_VAR: proxy.url}
            return self._run(args, env, cwd, refused)

    def _run(
        self, args: tuple[str, ...], env: dict[str, str], cwd: Path | None, refused: list[str]
    ) -> str:
        argv = ["git", *self.config, *args]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                check=True,
                env=env,
                cwd=cwd,
                timeout=GIT_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.CalledProcessError as exc:
            if refused:  # a host (the URL's or a submodule's) the egress proxy refused
                raise FetchError(f"git {args[0]} failed: egress refused: {refused[-1]}") from None
            detail = (exc.stderr or exc.stdout).strip().splitlines()
            raise SourceNotFoundError(
                f"git {args[0]} failed: {detail[-1] if detail else exc}"
            ) from None
        except subprocess.TimeoutExpired:
            raise FetchError(f"git {args[0]} took longer than {GIT_TIMEOUT_S} s") from None
        return done.stdout

    def resolve_ref(self, url: str, ref: str) -> str:
        """The full commit hash a branch, tag or HEAD of `url` points to."""
        check_git_url(url)
        check_git_ref(ref)
        out = self.run("ls-remote", "--", url, ref, f"refs/tags/{ref}^{{}}")
        hashes = {}
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            hashes[name] = sha
        for name in (f"refs/tags/{ref}^{{}}", ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
            if name in hashes:
                return hashes[name]
        if hashes:
            return next(iter(hashes.values()))
        raise SourceNotFoundError(f"git ref {ref!r} not found in {url}")

    def ref_class(self, repo: Path, ref: str, commit: str) -> RefClass:
        """The class of `commit`, asked for as `ref`, in the clone `repo` (no network): a tag
        that points at it, the default branch (the remote's HEAD) or another branch whose
        history holds it, else `other`. A ref's name alone proves nothing: a request may pair
        any ref with any commit, so the clone must show the commit on that ref."""
        head = self._local(repo, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD")
        default = head.removeprefix("refs/remotes/origin/") if head else None
        tag = branch = None
        if ref == "HEAD":
            branch = default
        elif ref.startswith("refs/heads/"):
            branch = ref.removeprefix("refs/heads/")
        elif ref.startswith("refs/tags/"):
            tag = ref.removeprefix("refs/tags/")
        elif not ref.startswith("refs/"):
            tag = branch = ref  # a plain name: `resolve_ref` takes a tag before a branch
        if tag is not None:
            tagged = self._local(
                repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}"
            )
            if tagged == commit:
                return RefClass("tag", f"refs/tags/{tag}")
        if branch is not None:
            tip = f"refs/remotes/origin/{branch}"
            if self._local(repo, "merge-base", "--is-ancestor", commit, tip) is not None:
                kind: Literal["default-branch", "branch"] = (
                    "default-branch" if branch == default else "branch"
                )
                return RefClass(kind, f"refs/heads/{branch}")
        return RefClass("other", f"commit:{commit}")

    def _local(self, repo: Path, *args: str) -> str | None:
        """A git command on the local clone (no network, no proxy): its output, None if it
        failed."""
        try:
            return self._run(args, self.env, repo, []).strip()
        except SourceNotFoundError:
            return None

    def checkout(self, url: str, commit: str, dest: Path) -> None:
        """Clone `url` into `dest` at `commit`, with its submodules (same rules for them)."""
        check_git_url(url)
        if len(commit) not in (40, 64) or not all(c in "0123456789abcdef" for c in commit):
            raise SourceNotFoundError(f"commit {commit!r} is not a full commit hash")
        self.run("clone", "--quiet", "--no-checkout", "--", url, str(dest))
        self.run("checkout", "--quiet", commit, "--", cwd=dest)
        self.run("submodule", "update", "--quiet", "--init", "--recursive", cwd=dest)
