"""`wheelwright verify --rebuild`: the verified provenance's inputs submitted again as a new build
(compiler cache off, a scratch environment); the worker compares the bytes and records the result
on the original's page; this prints it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.markup import escape

from service.cli.common import err
from service.client import Client
from service.errors import BuildFailedError, ProvenanceError, WaitTimeoutError
from service.provenance.rebuild import REPRODUCED, rebuild_request

#: How long the rebuild is waited for past its deadline (queueing, publish, the record).
WAIT_MARGIN_S = 300


def rebuild(server: str, token: str | None, statement: Mapping[str, Any]) -> dict[str, Any]:
    """Submit the rebuild, follow it, and return its recorded comparison."""
    fields = rebuild_request(statement)
    of = fields["rebuild_of"]
    with Client(server, token) as client:
        answer = client.submit(fields)
        if answer["cached"]:  # rebuilt before with these inputs: that rebuild's record
            build_id = None
        else:
            build_id = str(answer["build"]["build"]["id"])
            err.print(f"rebuild {build_id} queued: {answer['build']['url']}", soft_wrap=True)
            deadline = time.monotonic() + int(answer["build"].get("deadline_s") or 3600)
            try:
                for line in client.follow_log(build_id, deadline + WAIT_MARGIN_S):
                    err.print(f"[dim]|[/] {escape(line)}", soft_wrap=True)
            except WaitTimeoutError:
                raise WaitTimeoutError(f"gave up waiting for rebuild {build_id}") from None
            record = client.get(build_id)["build"]
            if record["state"] != "succeeded":
                stage = str(record.get("error_stage") or "build")
                raise BuildFailedError(stage, f"the rebuild {record['state']}: {record['error']}")
        found = client.rebuilds(of["environment"], of["request_key"])["rebuilds"]
    for item in found:
        if build_id is None or item.get("build_id") == build_id:
            return dict(item)
    raise ProvenanceError(f"the rebuild {build_id or '(cached)'} recorded no comparison")


def say(result: Mapping[str, Any]) -> None:
    if result["result"] == REPRODUCED:
        print(f"rebuild {result['build_id']}: reproduced (sha256 {result['sha256']})")
        return
    print(f"rebuild {result['build_id']}: differs (sha256 {result['sha256']},")
    print(f"  the original's {result['original_sha256']}); members that differ:")
    for name in result["differing"]:
        print(f"  {name}")
