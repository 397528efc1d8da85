"""Named build environments: a request that names one takes its target, pins and settings.

`[environments.cu128-torch2.7]` in the config file declares what `/simple/cu128-torch2.7/`
serves. A request naming it may not set those fields itself: the environment decides them, so
every wheel on that page was built the same way. One exception, for project builds: a request
may add runtime pins of packages the environment does not pin (a package built earlier in the
same project, installed before the next one's backend runs); a pin of a package the environment
pins is a clash like any other.
"""

from __future__ import annotations

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.config import Settings
from service.errors import InvalidRequestError
from service.models import BuildRequest

DECIDED_BY_ENVIRONMENT = (
    "target",
    "runtime",
    "build_requires",
    "config_settings",
    "build_env",
    "index",
    "local_label",
)


def apply_environment(request: BuildRequest, settings: Settings) -> BuildRequest:
    """The request with its named environment's settings filled in (unchanged without one)."""
    if request.environment is None:
        return request
    spec = settings.environments.get(request.environment)
    if spec is None:
        known = ", ".join(sorted(settings.environments)) or "none are configured"
        raise InvalidRequestError(f"unknown environment {request.environment!r} (known: {known})")
    given = request.model_fields_set
    pinned = {canonicalize_name(Requirement(pin).name) for pin in spec.runtime}
    added = tuple(pin for pin in request.runtime if "runtime" in given)
    runtime_clash = any(canonicalize_name(Requirement(pin).name) in pinned for pin in added)
    clashes = [
        name
        for name in DECIDED_BY_ENVIRONMENT
        if name in given and (name != "runtime" or runtime_clash)
    ]
    if clashes:
        raise InvalidRequestError(
            f"environment {request.environment!r} decides {', '.join(clashes)}; "
            "leave them out of the request"
        )
    decided = {name: getattr(spec, name) for name in DECIDED_BY_ENVIRONMENT}
    decided["runtime"] = (*spec.runtime, *added)
    if request.verify_smoke is None:  # the request's own smoke test wins over the environment's
        decided["verify_smoke"] = spec.verify_smoke
    # an environment may turn the compiler cache off; a request may only turn it off too
    decided["compiler_cache"] = request.compiler_cache and spec.compiler_cache
    return request.model_copy(update=decided)
