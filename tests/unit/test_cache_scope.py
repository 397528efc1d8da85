"""Compiler-cache scopes by origin (issue 17, hole 2): an index build's scope is its sdist's index
URL and name, an upload's its requester's, a git build's its repository and ref class; what each
means in a real git clone (the default branch, tags, other branches, a ref paired with a commit
it does not hold), and the scope strings as store keys."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from service.artifacts.checks import Expected
from service.config import load_settings
from service.models import Requester, parse_request
from service.store import LocalStore
from service.store.base import check_key
from tests.fakes import FakeExecutor
from worker import cache_scope as cs
from worker.cache_use import CacheUse
from worker.compiler_cache import generations, scope_prefix
from worker.fetch import Fetched, fetch
from worker.git import Git, RefClass

T = TypeVar("T")
NAMED = Expected(project="Torch_Scatter", version="2.1.2")
#: sccache's statistics of a build that compiled one file and wrote it to the cache
STATS = {
    "stats": {"compile_requests": 1, "cache_misses": {"counts": {"C/C++": 1}}, "cache_writes": 1}
}


#: the inputs digest of a request naming nothing but its source
PLAIN = cs.inputs_digest(parse_request({"source": {"kind": "directory", "path": "/src"}}))


def _fetched(source: dict[str, object], **fields: object) -> Fetched:
    request = parse_request({"source": source})
    return Fetched(request, "x", "0" * 64, Path("/x"), **fields)  # type: ignore[arg-type]


def test_index_builds_are_scoped_by_the_index_their_sdist_came_from() -> None:
    source = {"kind": "requirement", "requirement": "torch-scatter==2.1.2"}
    team = _fetched(source, expected=NAMED, index_origin="https://pypi.org/simple/")
    scope = cs.project_scope(team, None)
    assert scope == cs.Scope(f"index:torch-scatter@https://pypi.org/simple#{PLAIN}")
    # the same name from another index (a request naming its own --index-url) is another scope
    other = _fetched(source, expected=NAMED, index_origin="http://127.0.0.1:8080/simple/")
    assert cs.project_scope(other, None) == cs.Scope(
        f"index:torch-scatter@http://127.0.0.1:8080/simple#{PLAIN}"
    )
    folder = _fetched(source, expected=NAMED, index_origin="/srv/wheels/../sdists/")
    assert cs.project_scope(folder, None) == cs.Scope(
        f"index:torch-scatter@file:/srv/sdists#{PLAIN}"
    )
    # who asked does not matter: the same index and name is the same origin
    assert cs.project_scope(team, Requester(token="team-b")) == scope
    assert cs.project_scope(_fetched(source, expected=NAMED), None) is None  # origin unknown


def test_a_request_that_adds_code_of_its_own_is_another_origin() -> None:
    """The team's index build and the same sdist with a build requirement, runtime pin, extra
    index or launcher of the request's own (code that runs in the build stage, which can write
    the cache folder) never share a scope; job counts alone do not make another scope."""
    source = {"kind": "requirement", "requirement": "torch-scatter==2.1.2"}

    def scope_of(**fields: object) -> str:
        request = parse_request({"source": source, "runtime": ["torch==2.13.0"], **fields})
        fetched = Fetched(
            request,
            "x",
            "0" * 64,
            Path("/x"),
            expected=NAMED,
            index_origin="https://pypi.org/simple",
        )
        found = cs.project_scope(fetched, None)
        assert found is not None
        return found.name

    team = scope_of()
    assert team.startswith("index:torch-scatter@https://pypi.org/simple#")
    added = [
        scope_of(build_requires=["evil-helper==1.0"]),
        scope_of(runtime=["torch==2.13.0", "six==1.17.0"]),
        scope_of(index={"extra_index_urls": ["https://other.example/simple"]}),
        scope_of(build_env={"CMAKE_ARGS": "-DCMAKE_C_COMPILER_LAUNCHER=/tmp/x"}),
        scope_of(config_settings={"cmake.define.X": "1"}),
    ]
    assert team not in added and len(set(added)) == len(added)
    assert scope_of(build_env={"MAX_JOBS": "2", "NVCC_THREADS": "1"}) == team
    assert scope_of(verify_imports=["torch_scatter"]) == team  # verify runs after the build


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://PyPI.org/simple/", "https://pypi.org/simple"),
        ("https://pypi.org:443/simple", "https://pypi.org/simple"),
        ("https://user:s3cret@pypi.org//simple//", "https://pypi.org/simple"),
        ("http://127.0.0.1:80/simple/", "http://127.0.0.1/simple"),
        ("http://127.0.0.1:8080/simple/", "http://127.0.0.1:8080/simple"),
        ("https://[::1]:8443/simple/", "https://[::1]:8443/simple"),
        ("https://pypi.org/simple/#frag", "https://pypi.org/simple"),
        ("https://host/simple/?team=a", "https://host/simple?team=a"),
        ("https://host/other/", "https://host/other"),
    ],
)
def test_index_urls_are_normalized_without_their_credentials(url: str, normal: str) -> None:
    assert cs.index_origin(url) == normal
    assert "s3cret" not in scope_prefix(f"index:x@{cs.index_origin(url)}")


def test_uploads_are_scoped_by_their_requesters_token_name() -> None:
    upload = _fetched({"kind": "archive", "path": "/x/torch_scatter-2.1.2.tar.gz"}, expected=NAMED)
    a = cs.project_scope(upload, Requester(via="api", token="team-a"))
    b = cs.project_scope(upload, Requester(via="cli", token="team-b"))
    assert a == cs.Scope(f"upload:torch-scatter@token:team-a#{PLAIN}")
    assert b == cs.Scope(f"upload:torch-scatter@token:team-b#{PLAIN}")
    # no token (a service without tokens, the local `wheelwright build`): anonymous, whatever
    # the User-Agent made of `via`
    anonymous = cs.Scope(f"upload:torch-scatter@anonymous#{PLAIN}")
    assert cs.project_scope(upload, None) == anonymous
    assert cs.project_scope(upload, Requester(via="cli")) == anonymous
    assert cs.project_scope(upload, Requester(via="webhook", repository="a/b")) == anonymous
    directory = _fetched({"kind": "directory", "path": "/src"}, expected=NAMED)
    assert cs.project_scope(directory, Requester(token="team-a")) == a
    # a project with no name before its code runs gets no cache
    assert cs.project_scope(_fetched({"kind": "directory", "path": "/src"}), None) is None


def test_git_scopes_are_the_repository_for_the_default_branch_and_tags_and_own_for_others() -> None:
    url = "ssh://git@GitHub.com/Acme/Fused.git"
    repo = "git:github.com/Acme/Fused"
    shared = f"{repo}#{PLAIN}"
    for ref in (RefClass("default-branch", "refs/heads/main"), RefClass("tag", "refs/tags/v1")):
        assert cs.git_scope(url, ref, "a" * 40, PLAIN) == cs.Scope(shared, git_ref=ref)
    other_url = "https://github.com/Acme/Fused/"
    assert cs.git_scope(other_url, None, "a" * 40, PLAIN).name.startswith(repo)
    feature = RefClass("branch", "refs/heads/feature")
    own = cs.git_scope(url, feature, "a" * 40, PLAIN)
    assert own.name.startswith(f"{repo}@") and own.fallback == shared
    bare = cs.git_scope(url, RefClass("other", f"commit:{'b' * 40}"), "b" * 40, PLAIN)
    assert bare.fallback == shared and len({own.name, bare.name, shared}) == 3
    # unknown class (nothing proven): a scope of that commit's own
    assert cs.git_scope(url, None, "b" * 40, PLAIN) == bare
    # other build inputs: other scopes, the fallback included
    other = cs.git_scope(url, feature, "a" * 40, "f" * 16)
    assert {other.name, other.fallback}.isdisjoint({own.name, own.fallback})
    # the path keeps its case (servers that tell them apart are other repositories); an `@` in
    # it cannot pass for a ref's scope
    assert cs.repository("https://host/Org/Repo.git") == "host/Org/Repo"
    assert cs.repository("https://host/org/repo") != cs.repository("https://host/Org/Repo")
    assert cs.repository("file:///srv/git/repo/") == "/srv/git/repo"
    digest = own.name.rpartition("@")[2].partition("#")[0]
    assert cs.git_scope(f"https://host/repo@{digest}", feature, "a" * 40, PLAIN).name != (
        cs.git_scope("https://host/repo", feature, "a" * 40, PLAIN).name
    )


def test_scope_strings_are_safe_store_keys_and_never_collide() -> None:
    scopes = [
        "index:a@https://pypi.org/simple",
        "index:a@http://127.0.0.1:1/simple",
        "upload:a@token:team-a",
        "upload:a@token:team-b",
        "upload:a@anonymous",
        "git:github.com/x/a",
        "git:github.com/x/a@0123456789abcdef",
        "upload:a@token:" + "../\x00 odd" * 40,
    ]
    prefixes = {scope_prefix(s) for s in scopes}
    assert len(prefixes) == len(scopes)
    for prefix in prefixes:
        check_key(prefix.rstrip("/"))
        assert len(prefix) < 120
        assert not any(part in prefix for part in ("pypi", "team", "127-0", "odd"))
    assert scope_prefix("index:a-b@x").startswith("compiler-cache/index-a-b-")
    assert scope_prefix("index:a-b@x") != scope_prefix("index:a.b@x")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A repository: main (two commits), a tag v1 on a feature branch's commit, a PR ref."""
    repo = tmp_path_factory.mktemp("origin") / "fused"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text('[project]\nname = "fused"\nversion = "1"\n')
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    old = _git(repo, "rev-parse", "HEAD")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    main = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "feature")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "feature work")
    feature = _git(repo, "rev-parse", "HEAD")
    _git(repo, "tag", "v1")
    _git(repo, "checkout", "-q", "main")
    return {"url": f"file://{repo}", "old": old, "main": main, "feature": feature}


@pytest.mark.parametrize(
    ("ref", "commit", "kind", "name"),
    [
        ("HEAD", "main", "default-branch", "refs/heads/main"),
        ("main", "main", "default-branch", "refs/heads/main"),
        ("refs/heads/main", "old", "default-branch", "refs/heads/main"),  # main's history
        ("v1", "feature", "tag", "refs/tags/v1"),
        ("refs/tags/v1", "feature", "tag", "refs/tags/v1"),
        ("feature", "feature", "branch", "refs/heads/feature"),
        ("feature", "old", "branch", "refs/heads/feature"),
        # a ref's name proves nothing: a request that says `main` for the feature's commit,
        # or a tag for a commit it does not tag, writes that commit's scope alone
        ("main", "feature", "other", "commit:{feature}"),
        ("HEAD", "feature", "other", "commit:{feature}"),
        ("v1", "main", "other", "commit:{main}"),
        ("refs/pull/1/head", "feature", "other", "commit:{feature}"),
        ("nonexistent", "main", "other", "commit:{main}"),
    ],
)
def test_ref_classes_come_from_the_clone(
    origin: dict[str, str], tmp_path: Path, ref: str, commit: str, *, kind: str, name: str
) -> None:
    git = Git(allow_file=True)
    dest = tmp_path / "clone"
    git.checkout(origin["url"], origin[commit], dest)
    found = git.ref_class(dest, ref, origin[commit])
    assert found == RefClass(kind, name.format(**origin))  # type: ignore[arg-type]
    assert found.shared is (kind in ("default-branch", "tag"))


def test_the_fetch_stage_records_the_ref_class(origin: dict[str, str], tmp_path: Path) -> None:
    source = {"kind": "git", "url": origin["url"], "ref": "feature"}
    fetched = fetch(parse_request({"source": source}), tmp_path, git=Git(allow_file=True))
    assert fetched.git_ref == RefClass("branch", "refs/heads/feature")
    scope = cs.project_scope(fetched, None)
    assert scope is not None
    assert scope.fallback == f"git:{cs.repository(origin['url'])}#{PLAIN}"
    tagged = {**source, "ref": "v1"}
    fetched = fetch(parse_request({"source": tagged}), tmp_path / "t", git=Git(allow_file=True))
    assert cs.project_scope(fetched, None) == cs.Scope(scope.fallback, git_ref=fetched.git_ref)


class _Sections:
    """The engine's log as `CacheUse` sees it: lines kept, sections run at once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def run(self, stage: str, network: bool, action: Callable[[], T]) -> T:
        del stage, network
        return action()


def test_a_branch_build_reads_the_repositorys_cache_writes_its_own_and_says_so(
    origin: dict[str, str], tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path / "home")
    settings.work_dir.mkdir(parents=True)
    store = LocalStore(tmp_path / "store")
    executor = FakeExecutor(settings, compiler_cache=True)
    shared = f"git:{cs.repository(origin['url'])}#{PLAIN}"
    main = parse_request({"source": {"kind": "git", "url": origin["url"], "ref": "main"}})
    on_main = CacheUse.decide(
        fetch(main, tmp_path / "m", git=Git(allow_file=True)), settings, executor, store
    )
    rec = _Sections()
    on_main.bring(rec, tmp_path / "cache-main", settings)
    (tmp_path / "cache-main" / "a").mkdir()
    (tmp_path / "cache-main" / "a" / "object").write_bytes(b"main's")
    section = on_main.report(STATS, rec.line)
    assert section["scope"] == shared
    assert section["git"] == {
        "ref_class": "default-branch",
        "ref": "refs/heads/main",
        "read_shared": False,
    }
    on_main.save(rec, tmp_path / "cache-main", settings, section["counts"])
    assert f"compiler cache of {shared}: none stored yet (a cold build)" in rec.lines
    assert any(line.startswith("compiler cache: saved generation 1") for line in rec.lines)

    feature = parse_request({"source": {"kind": "git", "url": origin["url"], "ref": "feature"}})
    fetched = fetch(feature, tmp_path / "f", git=Git(allow_file=True))
    on_branch = CacheUse.decide(fetched, settings, executor, store)
    on_branch.bring(rec, tmp_path / "cache-branch", settings)
    assert (tmp_path / "cache-branch" / "a" / "object").read_bytes() == b"main's"
    (tmp_path / "cache-branch" / "a" / "branch-object").write_bytes(b"the branch's")
    section = on_branch.report(STATS, rec.line)
    own = section["scope"]
    assert own.startswith(f"{shared.partition('#')[0]}@") and section["brought"]["scope"] == shared
    assert section["git"] == {
        "ref_class": "branch",
        "ref": "refs/heads/feature",
        "read_shared": True,
    }
    on_branch.save(rec, tmp_path / "cache-branch", settings, section["counts"])
    assert [g for g, _ in generations(store, scope_prefix(own))] == [1]
    assert [g for g, _ in generations(store, scope_prefix(shared))] == [1]  # not written
    main_again = CacheUse.decide(
        fetch(main, tmp_path / "m2", git=Git(allow_file=True)), settings, executor, store
    )
    main_again.bring(rec, tmp_path / "cache-main2", settings)
    assert not (tmp_path / "cache-main2" / "a" / "branch-object").exists()
