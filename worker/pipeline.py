"""Request in, stored artifact out: the cache check, the build, the publish.

Shared by the embedded `wheelwright build` and the Celery task, so both answer a repeated request
from the store without building, and both publish the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from service import layout
from service.artifacts import Artifact, lookup, publish
from service.artifacts.checks import WheelLimits
from service.config import Settings
from service.index.sql import open_catalog
from service.keys import new_build_id
from service.models import BuildRequest, Requester
from service.prepare import Prepared, prepare
from service.provenance.attach import Signing
from service.provenance.rebuild import record_rebuild
from service.store import WheelStore
from worker.engine import Built, Hooks, log_path, run_build
from worker.executors import Executor
from worker.fetch import pin_source

LOG_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Outcome:
    artifact: Artifact
    cached: bool
    build_id: str | None


def abi_pins(runtime_freeze: list[str], abi_names: tuple[str, ...]) -> dict[str, str]:
    """Exact versions of the ABI-relevant runtime packages, from what was really installed.

    The public version is pinned (`torch==2.13.0` also admits `2.13.0+cpu`), like flash-attn's
    wheels, so the wheel cannot be installed beside another torch.
    """
    wanted = {canonicalize_name(name) for name in abi_names}
    pins: dict[str, str] = {}
    for line in runtime_freeze:
        if "==" not in line:
            continue
        req = Requirement(line)
        if canonicalize_name(req.name) in wanted:
            spec = next(iter(req.specifier))
            pins[canonicalize_name(req.name)] = Version(spec.version).public
    return pins


def local_label(request: BuildRequest, pins: Mapping[str, str]) -> str | None:
    """The request's label; `auto` names the target and the ABI pins: `cu130torch2.13`."""
    if request.local_label != "auto":
        return request.local_label
    target = request.target
    label = "cpu" if target.kind == "cpu" else f"cu{(target.cuda or '').replace('.', '')}"
    for name, version in sorted(pins.items()):
        release = Version(version).release
        label += name.replace("-", "").replace("_", "") + ".".join(str(n) for n in release[:2])
    return label


def wheel_limits(settings: Settings) -> WheelLimits:
    return WheelLimits(
        max_metadata_bytes=settings.limits.max_metadata_bytes,
        max_unpacked_bytes=settings.limits.max_wheel_unpacked_bytes,
    )


def cache_lookup(
    prepared: Prepared, settings: Settings, store: WheelStore
) -> tuple[Prepared, Artifact | None]:
    """The prepared request with its source pinned (a git ref resolved to its commit, and the
    build keyed by it), and the stored artifact if any."""
    pinned = prepared.pinned(pin_source(prepared.request, settings))
    return pinned, lookup(store, pinned.environment, pinned.key)


def build_and_publish(
    request: BuildRequest | Prepared,
    settings: Settings,
    store: WheelStore,
    executor: Executor,
    *,
    build_id: str | None = None,
    hooks: Hooks | None = None,
    requested_by: Requester | None = None,
) -> Outcome:
    """Answer `request` from the store, or build and publish it.

    A `Prepared` request (the runner's: what the API stored on the record) is used as it is; a
    plain `BuildRequest` (the embedded `wheelwright build`) arrives here and is prepared here.
    The build's log is kept in the store once the build has ended, whatever its outcome.
    `requested_by` (the build record's) decides whose compiler cache an upload uses.
    """
    if isinstance(request, BuildRequest):
        request = prepare(request, settings, executor=executor.name)
    prepared, hit = cache_lookup(request, settings, store)
    catalog = open_catalog(settings)
    if hit is not None:
        catalog.record(hit)  # a publish that died before its row: listed now
        return Outcome(artifact=hit, cached=True, build_id=None)
    build_id = build_id or new_build_id()
    signing = Signing.of(settings)  # a broken key fails here, before the build

    def on_wheel(built: Built) -> Artifact:
        runtime_freeze = built.results.runtime["freeze"]
        pins: Mapping[str, str] = {}
        if settings.abi_pins:
            pins = abi_pins(runtime_freeze, settings.abi_pins)
        # auto labels name torch (the ABI that matters) even where pinning is turned off
        label_pins = pins or abi_pins(runtime_freeze, ("torch",))
        published = publish(
            store,
            environment=built.environment,
            request_key=built.request_key,
            wheel=built.wheel,
            manifest=built.manifest,
            log_key=layout.build_log_key(built.build_id),
            abi_pins=pins,
            local_label=local_label(built.request, label_pins),
            expected=built.expected,
            limits=wheel_limits(settings),
            source_date_epoch=built.source_date_epoch,
            signing=signing,
            catalog=catalog,
        )
        record_rebuild(store, built.request, published, built.build_id)  # only for a rebuild
        return published

    try:
        artifact = run_build(
            prepared,
            settings,
            executor,
            on_wheel,
            build_id=build_id,
            hooks=hooks,
            store=store,
            requested_by=requested_by,
        )
    finally:
        keep_log(store, settings, build_id)
    return Outcome(artifact=artifact, cached=False, build_id=build_id)


def keep_log(store: WheelStore, settings: Settings, build_id: str) -> None:
    """Put the ended build's log into the store (`logs/builds/<id>.log`), the one copy that
    lasts; the local file stays for the caller (the CLI names it, the runner removes it)."""
    path = log_path(settings, build_id)
    if path.is_file():
        with path.open("rb") as stream:
            store.put(layout.build_log_key(build_id), stream, content_type=LOG_TYPE)
