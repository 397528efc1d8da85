"""Signed provenance and the SBOM, over one wheel published with a key: what verify proves, and
the check each one-byte alteration, an unknown key and a rotated-out key break."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pypi_simple import ProjectPage
from typer.testing import CliRunner

from service.api.app import create_app
from service.artifacts import Artifact, publish
from service.cli import app as cli
from service.config import Settings, SigningSettings
from service.errors import ConfigError, InvalidRequestError
from service.index import JSON_V1
from service.index.cache import PageCache
from service.models import RebuildOf, parse_request
from service.prepare import Prepared
from service.provenance.attach import Signing
from service.provenance.keys import KEYS_PATH, parse_keys, signer, trusted_keys
from service.provenance.rebuild import rebuild_request, rebuilds, record_rebuild
from service.provenance.sbom import SBOM_NAME
from service.provenance.statement import PREDICATE_TYPE
from service.provenance.verify import verify_wheel
from service.store import LocalStore
from tests.fixtures.wheels import make_wheel
from tests.provenance_kit import (
    altered_member,
    altered_signature,
    altered_statement,
    altered_wheel,
    make_key,
)

ENV = "cpu-py311-prov0001"
SBOM_PATH = f"demo-1.0.dist-info/sboms/{SBOM_NAME}"
SO = "demo/_native.cpython-311-x86_64-linux-gnu.so"
MANIFEST = {
    "build_id": "b" * 32,
    "inputs": {"source": {"kind": "archive", "path": "/w/x/demo-1.0.tar.gz", "sha256": "ab" * 32}},
    "source": {"kind": "archive", "filename": "demo-1.0.tar.gz", "sha256": "ab" * 32},
    "image": {"image": "wheelwright/build-cpu:py3.11", "image_id": "sha256:" + "cd" * 32},
    "python": "3.11.9",
    "runtime_freeze": ["torch==2.13.0+cpu", "numpy==2.3.5"],
    "build_freeze": ["setuptools==80.0.0"],
    "toolchain": {"gcc": "12.2.0"},
    "host": {"wheelwright": "0.1.0"},
    "started_at": "2026-01-01T00:00:00+00:00",
    "finished_at": "2026-01-01T00:01:00+00:00",
}


@dataclass(frozen=True)
class Published:
    store: LocalStore
    artifact: Artifact
    wheel: Path
    envelope: bytes
    keys: Path  # the folder of key files
    settings: Settings


def _publish(tmp: Path, store: LocalStore, key: Path | None, request_key: str) -> Artifact:
    wheel = make_wheel(
        tmp / "in" / request_key,
        "demo",
        "1.0",
        files={"demo/__init__.py": "", SO: "\x7fELF not really", "demo.libs/libz-1.so": "z"},
        tag="cp311-cp311-linux_x86_64",
    )
    signing = Signing.of(Settings(home=tmp, signing=SigningSettings(key_file=key)))
    return publish(
        store,
        environment=ENV,
        request_key=request_key,
        wheel=wheel,
        manifest=MANIFEST,
        abi_pins={"torch": "2.13.0"},
        source_date_epoch=1_700_000_000,
        signing=signing,
    )


@pytest.fixture
def published(tmp_path: Path) -> Published:
    store = LocalStore(tmp_path / "store")
    private, _public = make_key(tmp_path / "keys", "a")
    artifact = _publish(tmp_path, store, private, "req")
    wheel = tmp_path / artifact.filename
    wheel.write_bytes(store.get(artifact.wheel_key))
    assert artifact.provenance_key is not None
    envelope = store.get(artifact.provenance_key)
    settings = Settings(home=tmp_path, signing=SigningSettings(key_file=private))
    return Published(store, artifact, wheel, envelope, tmp_path / "keys", settings)


def _trusted(published: Published) -> list:  # type: ignore[type-arg]
    return [k.key for k in trusted_keys(published.settings.signing)]


def _failed(report: object) -> list[str]:
    return [c.name for c in report.failed]  # type: ignore[attr-defined]


def test_a_published_wheel_carries_its_sbom_listed_in_record(published: Published) -> None:
    path = SBOM_PATH
    with zipfile.ZipFile(published.wheel) as archive:
        names = archive.namelist()
        record = archive.read("demo-1.0.dist-info/RECORD").decode()
        sbom = json.loads(archive.read(path))
    assert names[-1] == "demo-1.0.dist-info/RECORD" and path in names
    assert any(line.startswith(f"{path},sha256=") for line in record.splitlines())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    assert sbom["metadata"]["component"]["purl"] == "pkg:pypi/demo@1.0"
    roles = {
        c["name"]: next(p["value"] for p in c["properties"] if p["name"] == "wheelwright:role")
        for c in sbom["components"]
    }
    assert roles == {
        "torch": "runtime",
        "numpy": "runtime",
        "setuptools": "build",
        "gcc": "toolchain",
        "python": "toolchain",
        SO: "extension",
        "demo.libs/libz-1.so": "bundled",
    }


def test_the_same_build_published_twice_gives_the_same_bytes(
    published: Published, tmp_path: Path
) -> None:
    again = _publish(tmp_path / "again", LocalStore(tmp_path / "other"), None, "req")
    assert again.sha256 == published.artifact.sha256


def test_verify_proves_the_signature_the_subject_and_the_sbom(published: Published) -> None:
    report = verify_wheel(published.wheel, published.envelope, _trusted(published))
    assert report.ok, report.checks
    assert [c.name for c in report.checks] == [
        "envelope",
        "signature",
        "statement",
        "subject",
        "sbom",
    ]
    assert report.keyid == trusted_keys(published.settings.signing)[0].keyid
    statement = report.statement
    assert statement is not None and statement["predicateType"] == PREDICATE_TYPE
    facts = report.facts()
    assert facts["subject"] == {published.artifact.filename: published.artifact.sha256}
    assert facts["build_id"] == "b" * 32 and facts["environment"] == ENV
    assert facts["source"] == f"demo-1.0.tar.gz (sha256:{'ab' * 32})"
    assert facts["image"] == f"wheelwright/build-cpu:py3.11 (sha256:{'cd' * 32})"
    definition = statement["predicate"]["buildDefinition"]
    source = {"kind": "archive", "path": "demo-1.0.tar.gz", "sha256": "ab" * 32}  # not the worker's
    assert definition["externalParameters"]["request"] == {"source": source}
    assert definition["internalParameters"]["abi_pins"] == {"torch": "2.13.0"}
    assert definition["internalParameters"]["toolchain"] == {"gcc": "12.2.0"}
    assert statement["predicate"]["runDetails"]["metadata"]["startedOn"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("alter", "check"),
    [
        ("wheel", "subject"),
        ("sbom", "sbom"),
        ("signature", "signature"),
        ("statement", "signature"),
        ("envelope", "envelope"),
    ],
)
def test_one_altered_byte_fails_the_check_it_breaks(
    published: Published, tmp_path: Path, alter: str, check: str
) -> None:
    wheel, envelope = published.wheel, published.envelope
    if alter == "wheel":
        wheel = altered_wheel(wheel, tmp_path / "w" / wheel.name)
    elif alter == "sbom":
        wheel = altered_member(wheel, SBOM_PATH, tmp_path / "s" / wheel.name)
    elif alter == "signature":
        envelope = altered_signature(envelope)
    elif alter == "statement":
        envelope = altered_statement(envelope)
    else:
        envelope = envelope.replace(b'"payloadType"', b'"payloadTypf"', 1)
    report = verify_wheel(wheel, envelope, _trusted(published))
    assert not report.ok
    assert check in _failed(report), report.checks
    if alter == "sbom":  # the wheel's bytes changed too; RECORD no longer holds
        assert _failed(report) == ["subject", "sbom"]
        assert "sha256" in report.failed[1].detail


def test_an_unknown_key_fails_the_signature(published: Published) -> None:
    _private, other = make_key(published.keys, "stranger")
    report = verify_wheel(published.wheel, published.envelope, parse_keys(other.read_bytes()))
    assert _failed(report) == ["signature"]
    assert "none of them a trusted key" in report.failed[0].detail


def test_a_rotation_keeps_old_keys_trusted_until_they_are_dropped(published: Published) -> None:
    old_private, old_public = published.keys / "a.pem", published.keys / "a.pub.pem"
    new_private, _new_public = make_key(published.keys, "b")
    rotated = SigningSettings(key_file=new_private, trusted_keys=(old_public,))
    keys = trusted_keys(rotated)
    assert [k.signing for k in keys] == [True, False]
    report = verify_wheel(published.wheel, published.envelope, [k.key for k in keys])
    assert report.ok and report.keyid == keys[1].keyid
    dropped = trusted_keys(SigningSettings(key_file=new_private))
    report = verify_wheel(published.wheel, published.envelope, [k.key for k in dropped])
    assert _failed(report) == ["signature"]
    assert old_private.exists()


def test_an_unsigned_provenance_is_readable_but_not_verified(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    artifact = _publish(tmp_path, store, None, "req")
    assert artifact.manifest["provenance"]["keyids"] == []
    wheel = tmp_path / artifact.filename
    wheel.write_bytes(store.get(artifact.wheel_key))
    assert artifact.provenance_key is not None
    report = verify_wheel(wheel, store.get(artifact.provenance_key), [])
    assert (
        _failed(report) == ["signature"] and report.failed[0].detail == "the envelope is unsigned"
    )


def test_a_bad_key_setting_is_a_config_error(tmp_path: Path) -> None:
    rsa_free = tmp_path / "not-a-key.pem"
    rsa_free.write_text("hello")
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        signer(SigningSettings(key_file=rsa_free))
    with pytest.raises(ConfigError, match="cannot read"):
        signer(SigningSettings(key_file=tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="not both"):
        signer(SigningSettings(key_file=rsa_free, key="x"))  # type: ignore[arg-type]


@pytest.fixture
def client(published: Published) -> Iterator[TestClient]:
    with TestClient(create_app(published.settings, store=published.store)) as client:
        yield client


def test_the_index_links_the_provenance_and_serves_the_keys(
    published: Published, client: TestClient
) -> None:
    page_url = f"http://testserver/simple/{ENV}/demo/"
    answer = client.get(page_url, headers={"Accept": JSON_V1})
    entry = answer.json()["files"][0]
    link = f"http://testserver/files/{published.artifact.provenance_key}"
    assert entry["provenance"] == link
    parsed = ProjectPage.from_json_data(answer.json(), base_url=page_url)
    assert parsed.packages[0].provenance_url == link
    html = client.get(page_url, headers={"Accept": "text/html"}).text
    assert f'data-provenance="{link}"' in html
    served = client.get(link)
    assert served.headers["content-type"] == "application/json"
    assert served.content == published.envelope
    keys = client.get(KEYS_PATH).json()["keys"]
    assert [k["keyid"] for k in keys] == [trusted_keys(published.settings.signing)[0].keyid]
    assert keys[0]["signing"] is True and keys[0]["pem"].startswith("-----BEGIN PUBLIC KEY")


def test_the_dashboard_shows_who_signed(published: Published, client: TestClient) -> None:
    keyid = trusted_keys(published.settings.signing)[0].keyid
    text = client.get(f"/ui/wheels/{ENV}/req").text
    assert "<strong>Verified</strong>: signed by trusted key" in text and keyid in text
    assert PREDICATE_TYPE in text


def test_verify_command_exits_non_zero_naming_each_failed_check(
    published: Published, tmp_path: Path
) -> None:
    runner = CliRunner()
    public = str(published.keys / "a.pub.pem")
    beside = Path(f"{published.wheel}.provenance")
    beside.write_bytes(published.envelope)
    ok = runner.invoke(cli, ["verify", str(published.wheel), "--key", public])
    assert ok.exit_code == 0, ok.output
    assert "proven:" in ok.stdout and published.artifact.sha256 in ok.stdout
    bad = altered_member(published.wheel, SBOM_PATH, tmp_path / "x" / published.wheel.name)
    failed = runner.invoke(cli, ["verify", str(bad), "--key", public, "--provenance", str(beside)])
    assert failed.exit_code == 40
    assert "verification failed: subject, sbom" in failed.output
    neither = runner.invoke(cli, ["verify", str(published.wheel)])
    assert neither.exit_code == 2 and "--key FILE or --server URL" in neither.output


def test_a_rebuild_has_its_own_key_and_scratch_environment_and_must_repeat_the_inputs(
    published: Published,
) -> None:
    report = verify_wheel(published.wheel, published.envelope, _trusted(published))
    assert report.statement is not None
    fields = rebuild_request(report.statement)
    assert fields["compiler_cache"] is False
    assert fields["rebuild_of"] == {"environment": ENV, "request_key": "req"}
    assert fields["source"]["store_key"] == "uploads/" + "ab" * 32 + "/demo-1.0.tar.gz"
    source = {"kind": "requirement", "requirement": "demo==1.0"}
    original = Prepared.of(parse_request({"source": source}), "img")
    rebuild = Prepared.of(
        parse_request(
            {
                "source": source,
                "compiler_cache": False,
                "rebuild_of": {"environment": original.environment, "request_key": original.key},
            }
        ),
        "img",
    )
    assert rebuild.key != original.key
    assert rebuild.environment == f"rebuild-{original.key[:16]}"
    with pytest.raises(InvalidRequestError, match="a rebuild repeats the original's inputs"):
        Prepared.of(
            parse_request(
                {
                    "source": {"kind": "requirement", "requirement": "demo==2.0"},
                    "rebuild_of": {"environment": ENV, "request_key": original.key},
                }
            ),
            "img",
        )


def test_a_rebuild_record_names_the_members_that_differ(
    published: Published, tmp_path: Path
) -> None:
    store = published.store
    wheel = make_wheel(
        tmp_path / "rebuilt",
        "demo",
        "1.0",
        files={"demo/__init__.py": "changed", SO: "\x7fELF not really", "demo.libs/libz-1.so": "z"},
        tag="cp311-cp311-linux_x86_64",
    )
    rebuilt = publish(
        store,
        environment="rebuild-x",
        request_key="rk",
        wheel=wheel,
        manifest=MANIFEST,
        abi_pins={"torch": "2.13.0"},
        source_date_epoch=1_700_000_000,
    )
    source = {"kind": "requirement", "requirement": "demo==1.0"}
    of = {"environment": ENV, "request_key": "req"}
    request = parse_request({"source": source, "rebuild_of": of})
    record = record_rebuild(store, request, rebuilt, "c" * 16)
    assert record is not None and record["result"] == "differs"
    assert record["differing"] == ["demo-1.0.dist-info/RECORD", "demo/__init__.py"]
    same = record_rebuild(store, request, published.artifact, "d" * 16)
    assert same is not None and same["result"] == "reproduced" and same["differing"] == []
    listed = rebuilds(store, RebuildOf(environment=ENV, request_key="req"))
    assert {r["build_id"] for r in listed} == {"c" * 16, "d" * 16}
    assert record_rebuild(store, parse_request({"source": source}), rebuilt, "e" * 16) is None


def test_provenance_links_follow_the_host_and_the_pages_kept_stay_in_their_budget(
    client: TestClient,
) -> None:
    """Without `public_url` the Host header names the links' base; a caller cycling Host
    values gets pages rendered, and what the API keeps of them stays within its byte budget."""
    first = client.get(f"/simple/{ENV}/demo/", headers={"Accept": JSON_V1})
    budget = 3 * len(first.content)
    client.app.state.index_pages = PageCache(budget_bytes=budget)  # type: ignore[attr-defined]
    for n in range(12):
        answer = client.get(
            f"/simple/{ENV}/demo/", headers={"Accept": JSON_V1, "Host": f"h{n}.example"}
        )
        link = answer.json()["files"][0]["provenance"]
        assert link.startswith(f"http://h{n}.example/files/wheels/"), link
    kept = client.app.state.index_pages.used_bytes  # type: ignore[attr-defined]
    assert 0 < kept <= budget


def test_the_dashboard_says_so_when_a_wheel_is_unsigned(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    _publish(tmp_path, store, None, "plain")
    with TestClient(create_app(Settings(home=tmp_path), store=store)) as client:
        text = client.get(f"/ui/wheels/{ENV}/plain").text
    assert "<strong>Unsigned</strong>" in text and "the envelope is unsigned" in text
