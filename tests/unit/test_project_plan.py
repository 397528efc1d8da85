"""Project plans from uv.lock files: what a target needs built, in which order, and why not."""

from __future__ import annotations

import pytest

from service.errors import InvalidRequestError
from service.models import Target
from service.project import parse_lock, plan_project, read_project_settings

CPU311 = Target(kind="cpu", python="3.11")
MANYLINUX = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"


def package(
    name: str,
    version: str = "1.0",
    *,
    wheels: tuple[str, ...] = (),
    sdist: bool = True,
    deps: str = "",
    extra: str = "",
) -> str:
    files = ", ".join(f'{{ url = "https://files.example/{w}" }}' for w in wheels)
    text = f'[[package]]\nname = "{name}"\nversion = "{version}"\n'
    text += 'source = { registry = "https://pypi.org/simple" }\n'
    if sdist:
        text += f'sdist = {{ url = "https://files.example/{name}-{version}.tar.gz" }}\n'
    if wheels:
        text += f"wheels = [{files}]\n"
    if deps:
        text += f"dependencies = [{deps}]\n"
    return text + extra + "\n"


def lock(root_deps: str, *packages: str) -> str:
    root = '[[package]]\nname = "proj"\nversion = "0.1"\nsource = { virtual = "." }\n'
    root += f"dependencies = [{root_deps}]\n\n"
    return 'version = 1\nrequires-python = ">=3.11"\n\n' + root + "".join(packages)


PYPROJECT = """
[project]
name = "proj"
version = "0.1"

[tool.uv.extra-build-dependencies]
alpha = ["torch"]
beta = [{ requirement = "torch", match-runtime = true }, "alpha", "setuptools>=70"]
"""

STACK = lock(
    '{ name = "torch" }, { name = "beta" }, { name = "pure" }',
    package("torch", "2.13.0", wheels=(f"torch-2.13.0-{MANYLINUX}.whl",)),
    package("alpha", "0.3"),
    package("beta", "0.2", deps='{ name = "alpha" }'),
    package("pure", "1.0", wheels=("pure-1.0-py3-none-any.whl",)),
)


def test_sdist_only_packages_are_built_in_dependency_order() -> None:
    plan = plan_project(parse_lock(STACK), read_project_settings(PYPROJECT), CPU311)
    assert plan.generations == (("alpha",), ("beta",))
    assert plan.installable == ("pure", "torch")
    alpha, beta = plan.nodes["alpha"], plan.nodes["beta"]
    assert alpha.reason == "sdist only"
    assert alpha.runtime == ("torch==2.13.0",)  # torch is the locked one, never "latest"
    assert beta.runtime == ("torch==2.13.0", "alpha==0.3", "setuptools>=70")
    assert beta.after == ("alpha",)


def test_wheels_for_other_pythons_or_platforms_do_not_count() -> None:
    text = lock(
        '{ name = "fast" }, { name = "winonly" }',
        package("fast", wheels=("fast-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",)),
        package("winonly", wheels=("winonly-1.0-cp311-cp311-win_amd64.whl",)),
    )
    plan = plan_project(parse_lock(text), read_project_settings(""), CPU311)
    assert sorted(plan.nodes) == ["fast", "winonly"]
    assert plan.nodes["fast"].reason.startswith("no wheel for cpu-py3.11 (wheels for cp312")
    py312 = plan_project(parse_lock(text), read_project_settings(""), Target(python="3.12"))
    assert sorted(py312.nodes) == ["winonly"]


def test_markers_extras_and_dev_groups_are_followed_for_the_target() -> None:
    root = (
        'version = 1\n\n[[package]]\nname = "proj"\nversion = "0.1"\nsource = { virtual = "." }\n'
        'dependencies = [{ name = "lib", extra = ["gpu"] },'
        ' { name = "wintool", marker = "sys_platform == \'win32\'" }]\n'
        '[package.dev-dependencies]\ndev = [{ name = "devtool" }]\n\n'
    )
    optional = '[package.optional-dependencies]\ngpu = [{ name = "kernels" }]\n'
    text = root + "".join(
        [
            package("lib", wheels=("lib-1.0-py3-none-any.whl",), extra=optional),
            package("kernels"),
            package("wintool"),
            package("devtool"),
        ]
    )
    plan = plan_project(parse_lock(text), read_project_settings(""), CPU311)
    assert sorted(plan.nodes) == ["devtool", "kernels"]  # not wintool: its marker is false


def test_the_project_names_packages_to_build_even_with_wheels() -> None:
    settings = read_project_settings('[tool.wheelwright]\nbuild = ["Pure"]\n')
    plan = plan_project(parse_lock(STACK), settings, CPU311)
    assert plan.nodes["pure"].reason == "named in [tool.wheelwright] build"
    with pytest.raises(InvalidRequestError, match="names nothere"):
        plan_project(
            parse_lock(STACK),
            read_project_settings('[tool.wheelwright]\nbuild = ["nothere"]'),
            CPU311,
        )


def test_nothing_to_build_is_an_empty_plan() -> None:
    text = lock('{ name = "pure" }', package("pure", wheels=("pure-1.0-py3-none-any.whl",)))
    plan = plan_project(parse_lock(text), read_project_settings(""), CPU311)
    assert plan.nodes == {} and plan.generations == () and plan.installable == ("pure",)


def test_a_cycle_is_refused_naming_it() -> None:
    text = lock('{ name = "a" }, { name = "b" }', package("a"), package("b"))
    settings = read_project_settings('[tool.uv.extra-build-dependencies]\na = ["b"]\nb = ["a"]\n')
    with pytest.raises(InvalidRequestError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        plan_project(parse_lock(text), settings, CPU311)


@pytest.mark.parametrize(
    ("pyproject", "match"),
    [
        (
            "[tool.uv.extra-build-dependencies]\n"
            'alpha = [{ requirement = "numpy", match-runtime = true }]',
            "does not install numpy",
        ),
        ("[tool.uv.extra-build-dependencies]\nalpha = [42]", "must be a requirement"),
        ('[tool.uv.extra-build-dependencies]\nalpha = ["not a req!"]', "not a req"),
        ("[tool.wheelwright]\nbuild = 3", "must be a list of names"),
        ("[tool", "not valid TOML"),
    ],
)
def test_bad_project_settings_are_named(pyproject: str, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        plan_project(parse_lock(STACK), read_project_settings(pyproject), CPU311)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("version = 2\n", "lock version 2"),
        ("version = [", "not valid TOML"),
        ('version = 1\n[[package]]\nversion = "1"\n', "malformed"),
        (lock("", package("x", "1"), package("x", "1")), "locks x==1 twice"),
    ],
)
def test_bad_locks_are_named(text: str, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        parse_lock(text)


def test_a_package_with_neither_wheel_nor_sdist_cannot_be_built() -> None:
    text = lock('{ name = "ghost" }', package("ghost", sdist=False))
    with pytest.raises(InvalidRequestError, match=r"ghost==1\.0 has no wheel .* and no sdist"):
        plan_project(parse_lock(text), read_project_settings(""), CPU311)


def test_a_forked_lock_picks_the_version_the_target_installs() -> None:
    text = lock(
        '{ name = "fork", version = "1.0", marker = "python_full_version < \'3.12\'" },'
        ' { name = "fork", version = "2.0", marker = "python_full_version >= \'3.12\'" }',
        package("fork", "1.0"),
        package("fork", "2.0", wheels=("fork-2.0-py3-none-any.whl",)),
    )
    on_311 = plan_project(parse_lock(text), read_project_settings(""), CPU311)
    assert [node.pin for node in on_311.nodes.values()] == ["fork==1.0"]
    on_312 = plan_project(parse_lock(text), read_project_settings(""), Target(python="3.12"))
    assert on_312.nodes == {} and on_312.installable == ("fork",)


def test_each_node_is_the_sdist_the_lock_names_with_its_hash() -> None:
    sha = "5e" * 32
    url = "http://127.0.0.1:9/links/private-2.0.tar.gz"
    text = lock(
        '{ name = "private" }, { name = "pathonly" }, { name = "md5only" }',
        '[[package]]\nname = "private"\nversion = "2.0"\n'
        'source = { registry = "http://127.0.0.1:9/links/" }\n'
        f'sdist = {{ url = "{url}", hash = "sha256:{sha.upper()}" }}\n\n',
        '[[package]]\nname = "pathonly"\nversion = "1.0"\nsource = { registry = "/srv/links" }\n'
        'sdist = { path = "pathonly-1.0.tar.gz" }\n\n',
        '[[package]]\nname = "md5only"\nversion = "1.0"\n'
        'source = { registry = "https://x/simple" }\n'
        'sdist = { url = "https://x/md5only-1.0.tar.gz", hash = "md5:00" }\n\n',
    )
    plan = plan_project(parse_lock(text), read_project_settings(PYPROJECT), CPU311)
    private = plan.nodes["private"]
    assert (private.sdist_url, private.sdist_sha256) == (url, sha)
    assert (plan.nodes["pathonly"].sdist_url, plan.nodes["pathonly"].sdist_sha256) == (None, None)
    assert plan.nodes["md5only"].sdist_url == "https://x/md5only-1.0.tar.gz"
    assert plan.nodes["md5only"].sdist_sha256 is None  # no sha256 recorded: nothing to check
