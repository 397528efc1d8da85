"""`wheelwright project plan` given a requirements.txt or a pylock.toml instead of a pyproject:
the real uv resolves the requirements against a real local index over HTTP, building forbidden,
and the package that only has an sdist is named as the one to build; an index the service does
not allow is refused, naming it, before uv reads the file."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest
from enginekit import managed_containers
from projectkit import fixture_index, project_env, wheelwright
from s3_server import free_port

ONLY_PURE = {"project-pure": ("wheelwright_pure", "1.0")}


def test_a_requirements_file_names_its_sdist_only_package_as_the_first_build(
    tmp_path: Path,
) -> None:
    with fixture_index(tmp_path / "index", ONLY_PURE) as index:
        requirements = tmp_path / "app" / "requirements.txt"
        requirements.parent.mkdir()
        requirements.write_text(f"--extra-index-url {index}\nsix==1.16.0\nwheelwright-pure==1.0\n")
        env = {
            **project_env(tmp_path / "home"),
            "WHEELWRIGHT_INDEX__EXTRA_INDEX_URLS": f'["{index}"]',
        }

        done = wheelwright(env, "project", "plan", str(requirements), "--json", timeout=600)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["blocked_by"] == "wheelwright-pure==1.0"

        # the folder alone finds the file (no pyproject.toml, no pylock.toml there)
        said = wheelwright(env, "project", "plan", str(requirements.parent), timeout=600)
        assert said.returncode == 0, said.stderr
        assert "without building wheelwright-pure==1.0" in " ".join(said.stderr.split())

        # a folder of this host as find-links, not on the service's allow-list: refused
        # before uv reads the file
        hostile = tmp_path / "hostile" / "requirements.txt"
        hostile.parent.mkdir()
        hostile.write_text(f"--find-links {tmp_path}\nwheelwright-pure==1.0\n")
        refused = wheelwright(env, "project", "plan", str(hostile))
        assert refused.returncode != 0
        said = " ".join(refused.stderr.split())
        assert f"find-links {str(tmp_path)!r} is not allowed on this service" in said


def test_a_pylock_file_lists_the_package_without_a_wheel_to_build(tmp_path: Path) -> None:
    pylock = tmp_path / "pylock.toml"
    pylock.write_text(
        'lock-version = "1.0"\n'
        "[[packages]]\n"
        'name = "six"\nversion = "1.16.0"\n'
        'wheels = [{ url = "https://files.example/six-1.16.0-py2.py3-none-any.whl" }]\n'
        "[[packages]]\n"
        'name = "wheelwright-pure"\nversion = "1.0"\n'
        'sdist = { url = "https://files.example/wheelwright_pure-1.0.tar.gz" }\n'
    )
    done = wheelwright(project_env(tmp_path / "home"), "project", "plan", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert [(n["name"], n["reason"]) for n in plan["build"]] == [("wheelwright-pure", "sdist only")]
    assert plan["from_wheels"] == ["six"]


@pytest.mark.docker
def test_project_build_of_a_requirements_file_builds_its_sdist_only_package_once(
    tmp_path: Path, docker_client: docker.DockerClient, cpu_image: str
) -> None:
    home = tmp_path / "home"
    with fixture_index(tmp_path / "index", ONLY_PURE) as index:
        requirements = tmp_path / "requirements.txt"
        requirements.write_text(f"--extra-index-url {index}\nsix==1.16.0\nwheelwright-pure==1.0\n")
        env = {**project_env(home), "WHEELWRIGHT_INDEX__EXTRA_INDEX_URLS": f'["{index}"]'}
        url = f"http://127.0.0.1:{free_port()}"
        args = ("project", "build", str(requirements), "--url", url)

        done = wheelwright(env, *args, "--json", timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        first = json.loads(done.stdout)
        assert [(p["name"], p["state"]) for p in first["packages"]] == [
            ("wheelwright-pure", "built")
        ]
        assert first["index_url"] in first["uv_config"]
        assert 'wheelwright-pure = { index = "wheelwright" }' in first["uv_config"]

        again = wheelwright(env, *args, "--json", timeout=900)
        assert again.returncode == 0, again.stderr[-3000:]
        second = json.loads(again.stdout)
        assert [(p["name"], p["state"]) for p in second["packages"]] == [
            ("wheelwright-pure", "cached")
        ]
        assert second["uv_config"] == first["uv_config"]

        refused = wheelwright(env, *args, "--write")
        assert refused.returncode == 2
        assert "--write edits a pyproject.toml" in " ".join(refused.stderr.split())
    assert managed_containers(docker_client, home) == []
