"""Which files a push changed, as the forges list them: what decides a project rebuild."""

from __future__ import annotations

from typing import Any

from service.webhooks import events

SHA_A, SHA_B = "a" * 40, "b" * 40


def _github_push(commits: list[dict[str, Any]], *, before: str = SHA_A) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": SHA_B,
        "commits": commits,
        "repository": {"full_name": "org/app", "clone_url": "https://example.org/org/app.git"},
    }


def test_a_github_push_lists_every_file_its_commits_touched() -> None:
    push = _github_push(
        [
            {"added": ["src/new.py"], "modified": ["uv.lock"], "removed": []},
            {"added": [], "modified": ["README.md"], "removed": ["old.txt"]},
        ]
    )
    event = events.github("push", push)
    assert isinstance(event, events.RefEvent)
    assert event.changed == {"src/new.py", "uv.lock", "README.md", "old.txt"}
    assert event.touches("pyproject.toml", "uv.lock")
    assert not event.touches("pyproject.toml")


def test_when_the_forge_does_not_list_everything_the_push_may_have_changed_anything() -> None:
    many = [{"added": [], "modified": ["README.md"], "removed": []}] * events.GITHUB_MAX_COMMITS
    for push in (_github_push(many), _github_push([], before=events.ZERO_SHA)):
        event = events.github("push", push)
        assert isinstance(event, events.RefEvent)
        assert event.changed is None
        assert event.touches("uv.lock")
    bad = _github_push([{"added": "uv.lock"}])
    event = events.github("push", bad)
    assert isinstance(event, events.RefEvent) and event.changed is None


def test_a_gitlab_push_lists_its_files_only_when_all_commits_are_listed() -> None:
    push = {
        "ref": "refs/heads/main",
        "before": SHA_A,
        "after": SHA_B,
        "total_commits_count": 1,
        "commits": [{"added": [], "modified": ["pyproject.toml"], "removed": []}],
        "project": {"path_with_namespace": "g/app", "git_http_url": "https://example.org/g/app"},
    }
    event = events.gitlab("Push Hook", push)
    assert isinstance(event, events.RefEvent)
    assert event.changed == {"pyproject.toml"}
    event = events.gitlab("Push Hook", {**push, "total_commits_count": 40})
    assert isinstance(event, events.RefEvent) and event.changed is None
