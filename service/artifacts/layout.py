"""Where each part of a published build lives in the store.

wheels/<sha256>/<filename>            the wheel, content-addressed (written if absent)
wheels/<sha256>/<filename>.metadata   its METADATA file (PEP 658), next to it
logs/<request_key>.log                the build log
builds/<environment>/<request_key>.json
                                      the manifest: written last and only if absent, it is
                                      the commit point; the index lists only what it names
history/<request_key>/<sha256>        an empty mark per wheel ever published for the request:
                                      a rebuild's manifest says if it reproduced those bytes
compiler-cache/<scope>/<generation>.tar
                                      a project's compiler cache (worker/compiler_cache.py)
"""

from __future__ import annotations

import re

from service.errors import InvalidRequestError
from service.models import ENVIRONMENT_RE

REQUEST_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
BUILDS = "builds/"


def is_environment(name: str) -> bool:
    return bool(ENVIRONMENT_RE.match(name))


def check_environment(name: str) -> str:
    if not is_environment(name):
        raise InvalidRequestError(
            f"environment name {name!r} must match {ENVIRONMENT_RE.pattern} "
            "(lowercase letters, digits, '.', '_', '-'; at most 100 characters)"
        )
    return name


def check_request_key(key: str) -> str:
    if not REQUEST_KEY_RE.match(key):
        raise InvalidRequestError(f"request key {key!r} must match {REQUEST_KEY_RE.pattern}")
    return key


def wheel_key(sha256: str, filename: str) -> str:
    return f"wheels/{sha256}/{filename}"


def metadata_key(sha256: str, filename: str) -> str:
    return f"{wheel_key(sha256, filename)}.metadata"


def log_key(request_key: str) -> str:
    return f"logs/{check_request_key(request_key)}.log"


def history_prefix(request_key: str) -> str:
    return f"history/{check_request_key(request_key)}/"


def manifest_prefix(environment: str) -> str:
    return f"{BUILDS}{check_environment(environment)}/"


def manifest_key(environment: str, request_key: str) -> str:
    return f"{manifest_prefix(environment)}{check_request_key(request_key)}.json"


def parse_manifest_key(key: str) -> tuple[str, str] | None:
    """`builds/<environment>/<request_key>.json` -> (environment, request_key), else None."""
    parts = key.split("/")
    if len(parts) != 3 or f"{parts[0]}/" != BUILDS or not parts[2].endswith(".json"):
        return None
    environment, request = parts[1], parts[2].removesuffix(".json")
    if not is_environment(environment) or not REQUEST_KEY_RE.match(request):
        return None
    return environment, request
