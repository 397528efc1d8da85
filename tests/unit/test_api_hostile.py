"""Odd bodies and odd ids, as a hostile caller sends them: every answer is a 4xx naming what was
wrong, never a 500, and never the input echoed back (in-process over a local store, nothing
queued). The schemathesis fuzz in tests/integration/test_api_fuzz.py sends bodies shaped by the
OpenAPI schema; these are the ones no schema describes: bytes that are not UTF-8, the wrong
content type, a field of 100 kB."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from service.store import LocalStore

BODIES = [
    b"",
    b"null",
    b"[]",
    b"{",
    b"\xff\xfe\x00",  # not UTF-8: FastAPI's own handler answered 500 echoing it
    b'{"source": 1}',
    b'{"source": {"kind": "requirement", "requirement": "\xc3\x28"}}',
    json.dumps({"source": {"kind": "requirement", "requirement": "a" * 100_000}}).encode(),
    json.dumps({"source": {"kind": "git", "url": "file:///etc", "ref": "main"}}).encode(),
]
CONTENT_TYPES = ["application/json", "text/plain", "multipart/form-data; boundary=x"]
ODD_IDS = ["..%2F..%2Fetc%2Fpasswd", "%00", "a" * 3000, "%ff", "<script>", "%0d%0aX:%20y"]


@pytest.fixture
def client(settings: Settings, store: LocalStore) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store=store), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("path", ["/v1/builds", "/v1/projects"])
@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_an_odd_body_is_a_4xx_naming_the_problem(
    client: TestClient, path: str, content_type: str
) -> None:
    for body in BODIES:
        answer = client.post(path, content=body, headers={"content-type": content_type})
        assert 400 <= answer.status_code < 500, (body[:40], answer.text[:300])
        detail = answer.json()["detail"]
        assert detail, body[:40]
        assert "\\xff" not in answer.text and "a" * 1000 not in answer.text  # input not echoed


def test_a_body_that_is_not_utf8_names_the_json_error(client: TestClient) -> None:
    answer = client.post(
        "/v1/builds", content=b"\xff\xfe", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["msg"] == "JSON decode error"


@pytest.mark.parametrize(
    "template",
    [
        "/v1/builds/{}",
        "/v1/builds/{}/log",
        "/v1/projects/{}",
        "/simple/{}/",
        "/simple/{}/{}/",
        "/find-links/{}/",
        "/files/{}",
        "/ui/builds/{}",
        "/ui/projects/{}",
        "/ui/environments/{}",
    ],
)
def test_an_odd_id_is_a_4xx(client: TestClient, template: str) -> None:
    for odd in ODD_IDS:
        url = template.format(odd, odd)
        answer = client.get(url)
        assert 400 <= answer.status_code < 500, (url[:80], answer.status_code, answer.text[:200])
        answer = client.post(url)
        assert 400 <= answer.status_code < 500, (url[:80], answer.status_code, answer.text[:200])
