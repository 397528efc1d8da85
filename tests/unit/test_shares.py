"""Fair shares without a service: whose share a request uses, how large a share is by default,
the project-build line (order, shares, waiting builds before new requests), and the shortest
token a share may be held by."""

from __future__ import annotations

import threading

import pytest

from service.config import LimitSettings, load_settings
from service.errors import BusyError, ConfigError
from service.models import Requester
from service.project.slots import ProjectSlots
from service.shares import ANONYMOUS, Share, project_share, share_of

A, B = Share("token:a", "token 'a'"), Share("token:b", "token 'b'")
HOOK = Share("repository:acme/app", "repository 'acme/app'")


def test_a_requester_is_its_token_its_repository_or_everyone_anonymous() -> None:
    assert share_of(Requester(via="cli", token="ci")) == Share("token:ci", "token 'ci'")
    webhook = Requester(via="webhook", delivery="github:d", repository="acme/app")
    assert share_of(webhook) == HOOK  # a webhook is its repository's, never a token's
    assert share_of(Requester(via="api")) == ANONYMOUS
    assert share_of(None) == ANONYMOUS


@pytest.mark.parametrize(("slots", "share"), [(1, 1), (2, 1), (3, 2), (4, 2), (9, 5)])
def test_by_default_no_one_takes_every_slot(slots: int, share: int) -> None:
    assert project_share(LimitSettings(max_project_builds=slots)) == share
    assert project_share(LimitSettings(max_project_builds=4, project_build_share=9)) == 4


def test_a_share_is_enforced_and_given_back() -> None:
    slots = ProjectSlots(3, share=2)
    slots.take(A)
    slots.take(A)
    with pytest.raises(BusyError, match="2 project builds of token 'a' run already"):
        slots.take(A)
    slots.take(B)  # the last slot is someone else's to take
    with pytest.raises(BusyError, match="already runs 3 project builds"):
        slots.take(B)
    slots.give_back(A)
    slots.take(A)
    assert slots.free == 0


def test_the_line_goes_in_order_skipping_those_at_their_share_and_before_new_requests() -> None:
    slots = ProjectSlots(3, share=1)
    slots.take(A)
    first, second = slots.join(HOOK, 2)  # a push with two environments
    (third,) = slots.join(B, 1)
    with pytest.raises(BusyError, match="3 wait for a slot"):
        slots.take(B)  # a free slot goes to the line first
    assert slots.wait(first, 5)
    assert not slots.wait(second, 0.05)  # the repository holds its share of one now
    assert slots.wait(third, 5)  # so the next in line whose requester may goes first
    assert slots.waiting == 1 and slots.free == 0
    done = threading.Event()
    thread = threading.Thread(target=lambda: done.set() if slots.wait(second, 10) else None)
    thread.start()
    slots.give_back(A)  # a slot frees, but the repository is still at its share
    assert not done.wait(0.1)
    slots.give_back(HOOK)
    thread.join(10)
    assert done.is_set() and slots.waiting == 0


def test_a_line_is_bounded_per_requester_all_or_none() -> None:
    slots = ProjectSlots(1, max_waiting=2)
    slots.join(HOOK, 2)
    with pytest.raises(BusyError, match="2 project builds of repository 'acme/app' wait"):
        slots.join(HOOK, 1)
    (ticket,) = slots.join(B, 1)  # another requester's line is its own
    slots.leave(ticket)
    assert slots.waiting == 2


def test_a_short_token_is_refused_by_its_name_never_its_value() -> None:
    secret = "too-short-secret"
    tokens = [{"name": "ci", "token": secret, "scopes": ["build"]}]
    with pytest.raises(ConfigError) as refused:
        load_settings(auth={"tokens": tokens})
    assert "auth.tokens: Value error, token 'ci' is shorter than 24 characters" in str(
        refused.value
    )
    assert secret not in str(refused.value)
    long_enough = [{"name": "ci", "token": "x" * 24, "scopes": ["build"]}]
    assert load_settings(auth={"tokens": long_enough}).auth.tokens[0].name == "ci"
