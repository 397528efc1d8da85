"""`wheelwright verify WHEEL|URL`: check a wheel's signed provenance and its SBOM.

The trusted keys are `--key` files (PEM public keys, or a keys document as the service serves
it) or the keys `--server` serves (at `KEYS_PATH`). The provenance is `--provenance`, else the
file beside the wheel (`<wheel>.provenance`, a URL's likewise), else the server's copy of it.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlsplit

import httpx
import typer
from rich.markup import escape

from service import layout
from service.cli.common import app, err, fail
from service.client import CLI_AGENT
from service.errors import InvalidRequestError, ProvenanceError, WheelwrightError
from service.provenance.envelope import MAX_ENVELOPE_BYTES
from service.provenance.keys import KEYS_PATH, parse_keys
from service.provenance.rebuild import REPRODUCED
from service.provenance.verify import Report, verify_wheel

MAX_DOWNLOAD_BYTES = 8 * 1024**3


@app.command()
def verify(
    target: Annotated[str, typer.Argument(help="a wheel file, or its URL on an index")],
    key: Annotated[
        list[Path] | None,
        typer.Option(help="a trusted public key (PEM, or a keys document); repeatable"),
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="trust the keys this service serves (and fetch from it)")
    ] = None,
    provenance: Annotated[
        Path | None, typer.Option(help="the DSSE envelope; default: the one beside the wheel")
    ] = None,
    token: Annotated[str | None, typer.Option(envvar="WHEELWRIGHT_TOKEN")] = None,
    output_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    rebuild: Annotated[
        bool,
        typer.Option(help="build its inputs again on --server (no compiler cache) and compare"),
    ] = False,
) -> None:
    """Check a wheel's provenance: the signature, that it names these bytes, and the SBOM."""
    try:
        if bool(key) == bool(server):
            raise InvalidRequestError("give the trusted keys: --key FILE or --server URL")
        if rebuild and server is None:
            raise InvalidRequestError("--rebuild builds on a service: give --server URL")
        with _http(token) as http, tempfile.TemporaryDirectory(prefix="wheelwright-") as tmp:
            keys = (
                [k for path in key or [] for k in parse_keys(_read(path))]
                if key
                else parse_keys(_get(http, server.rstrip("/") + KEYS_PATH) if server else b"")
            )
            wheel, beside = _wheel(http, target, Path(tmp))
            envelope = _envelope(http, wheel, beside, provenance, server)
            report = verify_wheel(wheel, envelope, keys)
    except WheelwrightError as exc:
        raise fail(exc) from None
    _print(report, output_json)
    if not report.ok:
        names = ", ".join(c.name for c in report.failed)
        raise fail(ProvenanceError(f"verification failed: {names}"))
    if rebuild:
        from service.cli import rebuild as rebuilding

        try:
            if server is None or report.statement is None:  # checked above; for the types
                raise InvalidRequestError("--rebuild builds on a service: give --server URL")
            result = rebuilding.rebuild(server, token, report.statement)
        except WheelwrightError as exc:
            raise fail(exc) from None
        rebuilding.say(result)
        if result["result"] != REPRODUCED:
            raise fail(ProvenanceError(f"the rebuild differs: {', '.join(result['differing'])}"))


def _print(report: Report, output_json: bool) -> None:
    if output_json:
        checks = [{"check": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks]
        facts = report.facts() if report.ok else None
        print(json.dumps({"ok": report.ok, "checks": checks, "proven": facts}, indent=2))
        return
    for check in report.checks:
        mark = "[green]ok[/]  " if check.ok else "[bold red]FAIL[/]"
        err.print(f"{mark} {check.name:<10} {escape(check.detail)}", soft_wrap=True)
    if report.ok:
        print("proven:")
        for name, value in report.facts().items():
            if value:
                print(f"  {name}: {value}")


@contextmanager
def _http(token: str | None) -> Iterator[httpx.Client]:
    headers = {"User-Agent": f"{CLI_AGENT}/0.1.0"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(headers=headers, timeout=60, follow_redirects=True) as http:
        yield http


def _is_url(text: str) -> bool:
    return urlsplit(text).scheme in ("http", "https")


def _wheel(http: httpx.Client, target: str, tmp: Path) -> tuple[Path, str]:
    """The wheel as a local file, and where its provenance would lie beside it."""
    if not _is_url(target):
        path = Path(target).expanduser()
        if not path.is_file():
            raise InvalidRequestError(f"no wheel file at {path}")
        return path, str(path) + ".provenance"
    url = target.split("#", 1)[0]
    name = Path(urlsplit(url).path).name
    if not name.endswith(".whl"):
        raise InvalidRequestError(f"{target} does not name a .whl file")
    path = tmp / name
    _download(http, url, path)
    return path, url + ".provenance"


def _envelope(
    http: httpx.Client, wheel: Path, beside: str, given: Path | None, server: str | None
) -> bytes:
    if given is not None:
        return _read(given)
    if _is_url(beside):
        return _get(http, beside)
    if Path(beside).is_file():
        return _read(Path(beside))
    if server is None:
        raise ProvenanceError(f"no provenance beside {wheel} (give --provenance or --server)")
    with wheel.open("rb") as stream:
        sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
    key = quote(layout.provenance_key(sha256, wheel.name), safe="/")
    return _get(http, f"{server.rstrip('/')}/files/{key}")


def _read(path: Path) -> bytes:
    try:
        with path.expanduser().open("rb") as stream:
            data = stream.read(MAX_ENVELOPE_BYTES + 1)
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_ENVELOPE_BYTES:
        raise InvalidRequestError(f"{path} is larger than {MAX_ENVELOPE_BYTES} bytes")
    return data


def _get(http: httpx.Client, url: str) -> bytes:
    """A small document (keys, an envelope): at most `MAX_ENVELOPE_BYTES`."""
    body = bytearray()
    try:
        with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise ProvenanceError(f"GET {url}: {response.status_code}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ENVELOPE_BYTES:
                    raise ProvenanceError(f"GET {url}: larger than {MAX_ENVELOPE_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise ProvenanceError(f"GET {url}: {exc}") from None
    return bytes(body)


def _download(http: httpx.Client, url: str, path: Path) -> None:
    try:
        with http.stream("GET", url) as response, path.open("wb") as out:
            if response.status_code != 200:
                raise ProvenanceError(f"GET {url}: {response.status_code}")
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise ProvenanceError(f"GET {url}: larger than {MAX_DOWNLOAD_BYTES} bytes")
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise ProvenanceError(f"GET {url}: {exc}") from None
