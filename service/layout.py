"""Every key in the store, in one place: what lies where, and who writes it.

wheels/<sha256>/<filename>            the wheel, content-addressed (written if absent)
wheels/<sha256>/<filename>.metadata   its METADATA file (PEP 658), next to it
wheels/<sha256>/<filename>.provenance its signed provenance (a DSSE envelope), next to it: the
                                      first written for these bytes stays
builds/<environment>/<request_key>.json
                                      the manifest: written last and only if absent, it is
                                      the commit point; the index lists only what it names
history/<request_key>/<sha256>        an empty mark per wheel ever published for the request:
                                      a rebuild's manifest says if it reproduced those bytes
logs/builds/<build_id>.log            a build's log, kept once when the build ends (succeeded
                                      or not); the manifest names it
uploads/<sha256>/<filename>           an uploaded sdist or source archive, by its own digest
rebuilds/<environment>/<request_key>/<build_id>.json
                                      a rebuild of that published build and how its bytes
                                      compared (service/provenance/rebuild.py)
compiler-cache/<scope>/<generation>.tar
                                      one origin's compiler cache of a project (the scope:
                                      worker/cache_scope.py; the tars: worker/compiler_cache.py)
projects/<project_build_id>.json      a server-side project build's state, rewritten as it
                                      changes (service/project/served.py)

The index pages are not stored: they are rendered from the manifests under `builds/`.
"""

from __future__ import annotations

import hashlib
import re

from service.errors import InvalidRequestError
from service.models import ENVIRONMENT_RE

REQUEST_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
UPLOAD_KEY_RE = re.compile(r"^uploads/[0-9a-f]{64}/[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$")
BUILDS = "builds/"
WHEELS = "wheels/"
BUILD_LOGS = "logs/builds/"
UPLOADS = "uploads/"
COMPILER_CACHE = "compiler-cache/"
PROJECT_BUILDS = "projects/"
PROJECT_BUILD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_SLUG_RE = re.compile(r"[^a-z0-9]+")


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
    return f"{WHEELS}{sha256}/{filename}"


def metadata_key(sha256: str, filename: str) -> str:
    return f"{wheel_key(sha256, filename)}.metadata"


def provenance_key(sha256: str, filename: str) -> str:
    return f"{wheel_key(sha256, filename)}.provenance"


def build_log_key(build_id: str) -> str:
    """`logs/builds/<build_id>.log`: one build's whole log."""
    return f"{BUILD_LOGS}{build_id}.log"


def upload_key(sha256: str, filename: str) -> str:
    """`uploads/<sha256>/<filename>` (`is_upload_of` tells whether a key is a plain one)."""
    return f"{UPLOADS}{sha256}/{filename}"


def is_upload_of(key: str, sha256: str) -> bool:
    """Whether `key` is where an upload with this sha256 is kept."""
    return bool(UPLOAD_KEY_RE.match(key)) and key.split("/")[1] == sha256


def history_prefix(request_key: str) -> str:
    return f"history/{check_request_key(request_key)}/"


def history_key(request_key: str, sha256: str) -> str:
    return f"{history_prefix(request_key)}{sha256}"


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


def rebuilds_prefix(environment: str, request_key: str) -> str:
    """`rebuilds/<environment>/<request_key>/`: the rebuilds of one published build."""
    return f"rebuilds/{check_environment(environment)}/{check_request_key(request_key)}/"


def rebuild_key(environment: str, request_key: str, build_id: str) -> str:
    return f"{rebuilds_prefix(environment, request_key)}{check_request_key(build_id)}.json"


def compiler_cache_prefix(scope: str) -> str:
    """`compiler-cache/<readable part>-<hash>/`: the readable part is the scope's kind and name
    (what comes before `@`: never an origin's URL or requester), the hash (128 bits) is of the
    whole scope and keeps scopes apart, whatever the slug."""
    slug = _SLUG_RE.sub("-", scope.partition("@")[0].lower()).strip("-")[:60] or "project"
    return f"{COMPILER_CACHE}{slug}-{hashlib.sha256(scope.encode()).hexdigest()[:32]}/"


def compiler_cache_key(prefix: str, generation: int) -> str:
    """One generation of a scope's compiler cache: `<prefix><10 digits>.tar`."""
    return f"{prefix}{generation:010d}.tar"


def project_build_key(project_build_id: str) -> str:
    """`projects/<id>.json`: one project build's state (a 32-digit hex id, nothing else)."""
    if not PROJECT_BUILD_ID_RE.match(project_build_id):
        raise InvalidRequestError(f"project build id {project_build_id!r} is not 32 hex digits")
    return f"{PROJECT_BUILDS}{project_build_id}.json"


def project_cancel_key(project_build_id: str) -> str:
    """`project-cancels/<id>`: present once someone asked that project build to stop (beside
    its state, which only the process running it writes)."""
    return f"project-cancels/{project_build_key(project_build_id).removeprefix(PROJECT_BUILDS)}"
