"""pylock.toml (PEP 751) read into the lock that plans take: every package whose marker applies
is installed, what has no wheel for the target is built, bad files refused naming the entry."""

from __future__ import annotations

import pytest

from service.errors import InvalidRequestError
from service.models import Target
from service.project import plan_project
from service.project.pylock import ROOT, parse_pylock
from service.project.settings import ProjectBuildSettings

CPU311 = Target(kind="cpu", python="3.11")
FILES = "https://files.example"
TORCH = "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"

PYLOCK = f"""\
lock-version = "1.0"
environments = ["sys_platform == 'linux'"]
requires-python = ">=3.11"
created-by = "hand"

[[packages]]
name = "torch"
version = "2.13.0"
index = "https://download.example/whl/cpu"
wheels = [{{ url = "{FILES}/{TORCH}", hashes = {{ sha256 = "00" }} }}]

[[packages]]
name = "Alpha_Ext"
version = "0.3"
sdist = {{ url = "{FILES}/alpha_ext-0.3.tar.gz", hashes = {{ sha256 = "01" }} }}

[[packages]]
name = "pure"
version = "1.0"
wheels = [{{ name = "pure-1.0-py3-none-any.whl", path = "wheels/pure-1.0-py3-none-any.whl" }}]

[[packages]]
name = "winonly"
version = "2.0"
marker = "sys_platform == 'win32'"
sdist = {{ url = "{FILES}/winonly-2.0.tar.gz" }}

[[packages]]
name = "old-wheels"
version = "5.0"
sdist = {{ url = "{FILES}/old_wheels-5.0.tar.gz" }}
wheels = [{{ url = "{FILES}/old_wheels-5.0-cp38-cp38-manylinux_2_17_x86_64.whl" }}]

[[packages]]
name = "mine"
directory = {{ path = ".", editable = true }}
"""


def test_every_package_whose_marker_applies_is_installed_and_the_ones_without_wheels_built() -> (
    None
):
    lock = parse_pylock(PYLOCK)
    assert lock.requires_python == ">=3.11"
    assert lock.versions["alpha-ext"][0].sdist == "alpha_ext-0.3.tar.gz"
    assert lock.versions["pure"][0].wheels == ("pure-1.0-py3-none-any.whl",)
    assert lock.versions["torch"][0].registry == "https://download.example/whl/cpu"
    assert lock.versions["mine"][0].is_local
    plan = plan_project(lock, ProjectBuildSettings(), CPU311)
    assert plan.order == ["alpha-ext", "old-wheels"]  # winonly's marker does not apply
    assert plan.nodes["alpha-ext"].reason == "sdist only"
    assert "no wheel for cpu-py3.11" in plan.nodes["old-wheels"].reason
    assert sorted(plan.installable) == ["pure", "torch"]
    assert ROOT not in plan.installable and "mine" not in plan.nodes
    alpha = plan.nodes["alpha-ext"]  # built from where the lock says, its hash as recorded
    assert (alpha.sdist_url, alpha.sdist_sha256) == (f"{FILES}/alpha_ext-0.3.tar.gz", "01")
    assert plan.nodes["old-wheels"].sdist_sha256 is None


def test_recorded_dependencies_are_followed_to_the_locked_version() -> None:
    text = """\
lock-version = "1.1"
[[packages]]
name = "app-dep"
version = "1.0"
wheels = [{ url = "https://f.example/app_dep-1.0-py3-none-any.whl" }]
dependencies = [{ name = "needs-build", version = "2.0" }]

[[packages]]
name = "needs-build"
version = "2.0"
marker = "python_version < '3.0'"
sdist = { url = "https://f.example/needs_build-2.0.tar.gz" }
"""
    lock = parse_pylock(text)
    # its own marker keeps it out as a root, but app-dep's edge brings it in
    assert plan_project(lock, ProjectBuildSettings(), CPU311).order == ["needs-build"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('lock-version = "2.0"\n', "has lock-version '2.0'; this service reads PEP 751"),
        ("lock-version = 1\n", 'lock-version must be a string like "1.0", found 1'),
        ("packages = []\n", "lock-version must be a string"),
        ('lock-version = "1.0"\n[[packages]]\nversion = "1"\n', "[[packages]] entry 1 has no name"),
        (
            'lock-version = "1.0"\n[[packages]]\nname = "x"\nsdist = { url = "u/x-1.tar.gz" }\n',
            "entry 1 (x) has no version",
        ),
        (
            'lock-version = "1.0"\n[[packages]]\nname = "x"\nversion = "1"\n',
            "entry 1 (x) has neither an sdist nor wheels",
        ),
        (
            'lock-version = "1.0"\n[[packages]]\nname = "x"\nversion = "1"\n'
            'wheels = [{ url = "https://f.example/x-1.tar.gz" }]\n',
            "entry 1 (x): Invalid wheel filename",
        ),
        (
            'lock-version = "1.0"\n[[packages]]\nname = "x"\nversion = "1"\nsdist = "x.tar.gz"\n',
            "entry 1 (x): sdist must be a table",
        ),
        (
            'lock-version = "1.0"\n[[packages]]\nname = "x"\nversion = "1"\n'
            'sdist = { url = "https://f.example/x-1.tar.gz" }\n'
            '[[packages]]\nname = "X"\nversion = "1"\n'
            'sdist = { url = "https://f.example/x-1.tar.gz" }\n',
            "lists x==1 twice",
        ),
        ('lock-version = "1.0"\n[[packages]\n', "is not valid TOML"),
    ],
)
def test_a_bad_pylock_is_refused_naming_the_file_and_the_entry(text: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_pylock(text, where="/p/pylock.toml")
    assert message in str(raised.value)
    assert str(raised.value).startswith("/p/pylock.toml")
