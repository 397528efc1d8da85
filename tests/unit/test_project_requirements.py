"""requirements.txt as a project: its indexes and find-links checked against the service's
allow-lists before uv reads it, then resolved by the real uv into a pylock.toml, building
forbidden (a package only a build can describe is named, not built)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Settings, SourceSettings
from service.egress import EgressPolicy
from service.errors import InvalidRequestError
from service.models import IndexSettings, Target
from service.project import plan_project
from service.project.inputs import InputKind, find_input, input_lock, input_project
from service.project.requirements import check_requirements, python_platform
from service.project.settings import ProjectBuildSettings
from tests.buildkit import make_sdist
from tests.fixtures.wheels import make_wheel

CPU311 = Target(kind="cpu", python="3.11")
MIRROR = "https://mirror.example/simple"


def settings(links: Path | None = None) -> Settings:
    return Settings(
        index=IndexSettings(extra_index_urls=(MIRROR,)),
        sources=SourceSettings(find_links=(links,) if links else ()),
    )


#: the operator's policy of these settings (the same for every `links`)
EGRESS = EgressPolicy.from_settings(settings())


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("--index-url file:///etc", "index 'file:///etc' is not allowed on this service"),
        ("-i=/srv/simple", "index '/srv/simple' is not allowed"),
        ("--extra-index-url ftp://127.0.0.1:9/simple/", "index 'ftp://127.0.0.1:9/simple/'"),
        ("--find-links file:///root", "find-links 'file:///root' is not allowed"),
        ("-f /etc", "find-links '/etc' is not allowed on this service"),
        ("-f wheels", "find-links 'wheels' must be absolute"),
        ("-r /etc/other.txt", "option '-r' is not accepted"),
        ("-e ./src", "option '-e' is not accepted"),
        ("--trusted-host evil.example", "option '--trusted-host' is not accepted"),
        ("pkg @ file:///etc/passwd", "direct URL 'file:///etc/passwd' is not accepted"),
        ("six==1.16 --config-settings x=y", "option '--config-settings' is not accepted"),
        ("./src/mine", "'./src/mine' is not a requirement"),
    ],
)
def test_what_the_service_may_not_follow_is_refused_naming_it(line: str, named: str) -> None:
    text = f"# pinned by hand\nsix==1.16.0\n{line}\n"
    with pytest.raises(InvalidRequestError) as raised:
        check_requirements(text, settings(), egress=EGRESS, where="req.txt")
    assert str(raised.value).startswith("req.txt, line 3: ")
    assert named in str(raised.value)


def test_allowed_indexes_folders_hashes_and_comments_pass(tmp_path: Path) -> None:
    links = tmp_path / "links"
    (links / "more").mkdir(parents=True)
    text = (
        f"--extra-index-url {MIRROR}/\n"
        "--index-url=https://pypi.org/simple\n"
        f"--find-links {links / 'more'}  # below an allowed folder\n"
        "--only-binary :all:\n"
        "six==1.16.0 \\\n    --hash=sha256:8abb2f1d\n"
        "tomli ; python_version < '3.11'  # a marker with quotes\n"
    )
    check_requirements(text, settings(links), egress=EGRESS, where="req.txt")  # raises nothing


def test_the_platform_uv_resolves_for_is_the_images() -> None:
    assert python_platform(CPU311) == "x86_64-manylinux_2_36"


def test_uv_resolves_the_file_into_a_pylock_the_plan_reads(tmp_path: Path) -> None:
    links = tmp_path / "links"
    make_wheel(links, "tinydep", "1.0")
    windows_only = "winlib ; sys_platform == 'win32'"
    make_wheel(links, "user-pkg", "2.0", requires=["tinydep>=1", windows_only])
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--no-index\n--find-links {links}\nuser-pkg==2.0\n")
    given = find_input(tmp_path)
    assert given.kind is InputKind.REQUIREMENTS and given.file == requirements
    found = input_lock(given, settings(links), CPU311, egress=EGRESS)
    assert found.lock is not None and found.blocked_by is None
    assert {name: p[0].version for name, p in found.lock.versions.items()} == {
        "pylock-toml": "0",
        "tinydep": "1.0",
        "user-pkg": "2.0",
    }
    plan = plan_project(found.lock, ProjectBuildSettings(), CPU311)
    assert plan.nodes == {} and sorted(plan.installable) == ["tinydep", "user-pkg"]


def test_a_package_with_only_an_sdist_is_named_as_the_first_build(tmp_path: Path) -> None:
    links = tmp_path / "links"
    make_wheel(links, "tinydep", "1.0")
    links.mkdir(exist_ok=True)
    make_sdist("project-pure", links, name="wheelwright_pure", version="1.0")
    requirements = tmp_path / "reqs.txt"
    requirements.write_text(f"--no-index\n-f {links}\ntinydep\nwheelwright-pure==1.0\n")
    found = input_lock(find_input(requirements), settings(links), CPU311, egress=EGRESS)
    assert found.lock is None and found.blocked_by == "wheelwright-pure==1.0"


def test_a_folder_prefers_pyproject_then_pylock_then_requirements(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match=r"holds none of pyproject\.toml, pylock\.toml"):
        find_input(tmp_path)
    for name in ("requirements.txt", "pylock.toml", "pyproject.toml"):
        (tmp_path / name).write_text("")
        assert find_input(tmp_path).file.name == name
    (tmp_path / "setup.cfg").write_text("")
    with pytest.raises(InvalidRequestError, match=r"setup\.cfg: not a project file"):
        find_input(tmp_path / "setup.cfg")
    with pytest.raises(InvalidRequestError, match=r"missing\.txt does not exist"):
        find_input(tmp_path / "missing.txt")


def test_a_requirements_file_gives_its_indexes_pins_and_names_to_the_environment(
    tmp_path: Path,
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"--index-url {MIRROR}\n-f file://{links}\ntorch==2.13.0\n"
        "Beta_Pkg>=1 ; sys_platform == 'linux'\n"
    )
    found = input_project(find_input(requirements), settings(links), CPU311, egress=EGRESS)
    assert found.abi_pins == {"torch": "2.13.0"}
    assert found.direct == {"torch", "beta-pkg"}
    assert found.data == {"tool": {"uv": {"index-url": MIRROR, "find-links": [str(links)]}}}


def test_a_pylock_whose_package_comes_from_a_host_path_index_is_refused(tmp_path: Path) -> None:
    pylock = tmp_path / "pylock.toml"
    pylock.write_text(
        'lock-version = "1.0"\nrequires-python = ">=3.10"\n'
        '[[packages]]\nname = "torch"\nversion = "2.13.0"\n'
        'index = "file:///srv/simple"\n'
        'wheels = [{ url = "https://evil.example/torch-2.13.0-py3-none-any.whl" }]\n'
    )
    with pytest.raises(InvalidRequestError) as raised:
        input_project(find_input(pylock), settings(), CPU311, egress=EGRESS)
    assert "index 'file:///srv/simple' is not allowed on this service" in str(raised.value)
    pylock.write_text(pylock.read_text().replace("file:///srv/simple", MIRROR))
    found = input_project(find_input(tmp_path), settings(), CPU311, egress=EGRESS)
    assert found.abi_pins == {"torch": "2.13.0"}
    assert found.data == {
        "tool": {"uv": {"extra-index-url": [MIRROR]}},
        "project": {"requires-python": ">=3.10"},
    }
