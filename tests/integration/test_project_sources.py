"""A team's private packages, from its own find-links page (served over HTTP here): each node is
built from the sdist URL its lock names, its hash checked, and a same-named package on another
index the project names is never asked for (dependency confusion). Real uv, real dockerd."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path

import docker
import pytest
import uv
from enginekit import managed_containers
from projectkit import find_links_page, fixture_index, project_env, wheelwright
from s3_server import free_port

pytestmark = pytest.mark.docker

PRIVATE = """\
[project]
name = "private-app"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [{dependencies}]

# an index that also has a package named wheelwright-fastone: never the one the team locked
[[tool.uv.index]]
name = "decoy"
url = "{decoy}"
explicit = true

[tool.uv]
find-links = ["{links}"]
{extra}"""

FASTONE = {"project-fastone": ("wheelwright_fastone", "1.0")}
#: the decoy's package of the same name: another package's code under fastone's name
DECOY = {"project-pure": ("wheelwright_fastone", "1.0")}


def lock_with_uv(folder: Path) -> str:
    """The team's lock, made as on a developer's machine (fastone's metadata is static: read
    from its sdist, nothing built)."""
    done = subprocess.run(
        [uv.find_uv_bin(), "lock", "--directory", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return (folder / "uv.lock").read_text()


def test_a_private_package_is_built_from_the_url_its_lock_names_and_nowhere_else(
    tmp_path: Path, docker_client: docker.DockerClient, cpu_image: str
) -> None:
    links_seen: list[str] = []
    decoy_seen: list[str] = []
    with (
        find_links_page(tmp_path / "links", FASTONE, links_seen) as links,
        fixture_index(tmp_path / "decoy", DECOY, decoy_seen) as decoy,
    ):
        home = tmp_path / "home"
        env = project_env(home, links, decoy)
        project = tmp_path / "app"
        project.mkdir()
        text = PRIVATE.format(
            dependencies='"wheelwright-fastone==1.0"', decoy=decoy, links=links, extra=""
        )
        (project / "pyproject.toml").write_text(text)
        locked = lock_with_uv(project)
        sdist_url = f"{links.removesuffix('/links/')}/files/wheelwright_fastone-1.0.tar.gz"
        assert sdist_url in locked  # uv locked the team's own sdist, with its hash
        hashed = re.search(r'hash = "sha256:([0-9a-f]{64})"', locked)
        assert hashed is not None
        links_seen.clear()

        url = f"http://127.0.0.1:{free_port()}"
        done = wheelwright(env, "project", "build", str(project), "--url", url, "--json")
        assert done.returncode == 0, done.stderr[-4000:]
        packages = {p["name"]: p for p in json.loads(done.stdout)["packages"]}
        assert packages["wheelwright-fastone"]["state"] == "built"
        assert "/files/wheelwright_fastone-1.0.tar.gz" in links_seen  # the worker's fetch
        assert not any("fastone" in path for path in decoy_seen), decoy_seen

        # the lock's hash no longer the file's: that node fails, naming the package and both
        tampered = locked.replace(hashed.group(1), "0" * 64)
        (project / "uv.lock").write_text(tampered)
        bad = wheelwright(env, "project", "build", str(project), "--url", url, "--json")
        assert bad.returncode != 0
        said = bad.stdout + bad.stderr
        assert "wheelwright-fastone==1.0" in said and f"has sha256 {hashed.group(1)}" in said
        assert f"lock records {'0' * 64}" in said

        # without a lock: the lock uv makes for the build names the same URL, the same rule
        (project / "uv.lock").unlink()
        links_seen.clear()
        fresh = wheelwright(env, "project", "build", str(project), "--url", url, "--json")
        assert fresh.returncode == 0, fresh.stderr[-4000:]
        states = {p["name"]: p["state"] for p in json.loads(fresh.stdout)["packages"]}
        assert states == {"wheelwright-fastone": "cached"}  # the same sdist, by its hash
        assert not any("fastone" in path for path in decoy_seen), decoy_seen
    assert managed_containers(docker_client, home) == []


def test_a_package_needed_only_at_build_time_is_built_first_from_the_team_page(
    tmp_path: Path, docker_client: docker.DockerClient, cpu_image: str
) -> None:
    # fasttwo's setup.py imports fastone, named only in [tool.uv.extra-build-dependencies];
    # fastone has no wheel anywhere: it is a node of its own, built before fasttwo
    decoy_seen: list[str] = []
    both = {**FASTONE, "project-fasttwo": ("wheelwright_fasttwo", "1.0")}
    with (
        find_links_page(tmp_path / "links", both) as links,
        fixture_index(tmp_path / "decoy", DECOY, decoy_seen) as decoy,
    ):
        home = tmp_path / "home"
        env = project_env(home, links, decoy)
        project = tmp_path / "app"
        project.mkdir()
        extra = (
            "\n[tool.uv.extra-build-dependencies]\n"
            'wheelwright-fasttwo = ["wheelwright-fastone==1.0"]\n'
        )
        text = PRIVATE.format(
            dependencies='"wheelwright-fasttwo==1.0"', decoy=decoy, links=links, extra=extra
        )
        (project / "pyproject.toml").write_text(text)
        locked = lock_with_uv(project)
        assert "wheelwright-fastone" not in locked  # the lock does not know it

        url = f"http://127.0.0.1:{free_port()}"
        done = wheelwright(env, "project", "build", str(project), "--url", url)
        assert done.returncode == 0, done.stderr[-4000:]
        assert not any(path.startswith("/files/") for path in decoy_seen), decoy_seen
    # the CI log (no terminal here): a line per change, fastone built before fasttwo is queued
    lines = done.stderr.splitlines()
    assert lines[0] == f"locking {project / 'pyproject.toml'} with building forbidden ..."
    one, two = "wheelwright-fastone 1.0", "wheelwright-fasttwo 1.0"
    built_one = next(i for i, line in enumerate(lines) if line.startswith(f"{one}  built  "))
    assert built_one < lines.index(f"{two}  queued")
    running = [line for line in lines if line.startswith(f"{two}  running  ")]
    assert all(re.fullmatch(rf"{two}  running(  [a-z_]+)?  \d+ s", line) for line in running)
    assert any(line.split("  ")[2] == "build" for line in running), lines
    summary = lines[lines.index("summary:") + 1 :]
    assert re.fullmatch(
        rf"  {one}  built  \d+ s  wheelwright_fastone-1\.0-py3-none-any\.whl", summary[0]
    )
    assert summary[1].startswith(f"  {two}  built  ")
    assert "wheelwright-fasttwo" in done.stdout  # the uv configuration, on stdout
    wheel = next(home.rglob("wheelwright_fasttwo-1.0-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        built = archive.read("wheelwright_fasttwo/_built.py").decode()
    assert built == 'AT_BUILD = "the team\'s own fastone"\n'  # fastone was in its build
    assert managed_containers(docker_client, home) == []
