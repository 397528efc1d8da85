"""A lock's sdist, fetched: from the URL the lock names and nowhere else, through the egress
policy, its sha256 checked where the lock records one; what is wrong is named."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from service.egress import EgressPolicy
from service.errors import FetchError
from service.models import RequirementSource
from tests.loopback import Origin, serving
from worker.fetch import download_locked_sdist

BODY = b"not really a tarball, but bytes with a digest"
SHA = hashlib.sha256(BODY).hexdigest()


def source(
    port: int, *, sha256: str | None = SHA, name: str = "private-1.0.tar.gz"
) -> RequirementSource:
    url = f"http://127.0.0.1:{port}/links/{name}"
    return RequirementSource(requirement="private==1.0", url=url, sha256=sha256)


def test_the_lock_url_is_fetched_and_its_hash_checked(tmp_path: Path) -> None:
    with serving(Origin(body=BODY)) as origin:
        allowed = EgressPolicy.allowing(f"127.0.0.1:{origin.port}")
        got = download_locked_sdist(source(origin.port), tmp_path, allowed)
        assert got.read_bytes() == BODY and got.name == "private-1.0.tar.gz"
        assert origin.paths == ["/links/private-1.0.tar.gz"]  # one request, to the lock's URL
        wrong = "0" * 64
        (tmp_path / "x").mkdir()
        with pytest.raises(FetchError, match=f"has sha256 {SHA}, but the lock records {wrong}"):
            download_locked_sdist(source(origin.port, sha256=wrong), tmp_path / "x", allowed)
        assert not (tmp_path / "x" / "private-1.0.tar.gz").exists()  # nothing half-kept
        no_hash = download_locked_sdist(source(origin.port, sha256=None), tmp_path, allowed)
        assert no_hash.read_bytes() == BODY


def test_a_url_the_policy_refuses_or_another_package_is_not_fetched(tmp_path: Path) -> None:
    with serving(Origin(body=BODY)) as origin:
        with pytest.raises(FetchError, match=r"private==1\.0 from http://127\.0\.0\.1.*refused"):
            download_locked_sdist(source(origin.port), tmp_path, EgressPolicy())
        allowed = EgressPolicy.allowing(f"127.0.0.1:{origin.port}")
        with pytest.raises(FetchError, match=r"is not an sdist of private==1\.0"):
            download_locked_sdist(source(origin.port, name="other-1.0.tar.gz"), tmp_path, allowed)
        assert origin.paths == []


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with serving(Origin(status=404)) as origin:
        allowed = EgressPolicy.allowing(f"127.0.0.1:{origin.port}")
        with pytest.raises(FetchError, match=r"could not fetch the lock's sdist for private==1\.0"):
            download_locked_sdist(source(origin.port), tmp_path, allowed)
