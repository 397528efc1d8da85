"""What the project build pages show, computed from a project build's saved state (the JSON that
`GET /v1/projects/{id}` answers): list rows, the source, the target, durations, the package table.

Pure functions of that state (and the clock), so the templates only lay things out. The state is
read as data from the store: every field is checked for its type, nothing is assumed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from service.dashboard.views import duration, moment
from service.errors import InvalidRequestError
from service.layout import PROJECT_BUILD_ID_RE, PROJECT_BUILDS, is_environment
from service.store import StoredObject

State = Mapping[str, object]
ENDED = frozenset({"succeeded", "failed", "cancelled"})
#: how `load_state` words a project build whose process stopped (its heartbeat did)
_BUILD_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CURSOR_RE = re.compile(r"^(\d{1,12}(?:\.\d{1,9})?)-([0-9a-f]{32})$")
_OK = {"succeeded", "built", "cached"}
_BAD = {"failed", "not built", "lost"}
_IDLE = {"queued", "waiting"}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _items(value: object) -> list[Mapping[str, object]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def terminal(state: State) -> bool:
    return state.get("state") in ENDED


def shown_state(state: State) -> str:
    """The state as the JSON API answers it, except `lost` for one whose process stopped (the
    API answers `failed` with `lost: true`)."""
    name = _text(state.get("state")) or "unknown"
    return "lost" if name == "failed" and state.get("lost") is True else name


def state_class(name: str) -> str:
    """The badge's colour class: `ok`, `bad`, `run` or `idle`."""
    if name in _OK:
        return "ok"
    if name in _BAD:
        return "bad"
    return "idle" if name in _IDLE else "run"


def source_text(source: object) -> str:
    """`demo.tar.gz` (uploaded), `https://host/repo.git @ main (0123456789ab)` (git)."""
    found = _mapping(source)
    kind = _text(found.get("kind"))
    if kind == "upload":
        return _text(found.get("name")) or "an uploaded archive"
    if kind == "git":
        text = f"{_text(found.get('url'))} @ {_text(found.get('ref')) or 'HEAD'}"
        commit = _text(found.get("commit"))
        return f"{text} ({commit[:12]})" if commit else text
    return kind or "not recorded"


def target_text(target: object) -> str:
    """`cpu, Python 3.11` or `cuda 12.8, Python 3.11` (and the image when one was named)."""
    found = _mapping(target)
    kind = _text(found.get("kind")) or "cpu"
    cuda = _text(found.get("cuda"))
    text = f"{kind} {cuda}" if kind == "cuda" and cuda else kind
    python = _text(found.get("python"))
    text += f", Python {python}" if python else ""
    image = _text(found.get("image"))
    return f"{text}, image {image}" if image else text


def elapsed(state: State, now: float | None = None) -> float | None:
    """Seconds from its creation to its end (to now while it runs); None if not recorded."""
    created = _number(state.get("created_at"))
    if created is None:
        return None
    finished = _number(state.get("finished_at"))
    end = finished if finished is not None else (now or time.time())
    return max(0.0, end - created)


def environment_link(state: State) -> str | None:
    """The environment's name where it is one the dashboard has a page for."""
    name = _text(state.get("environment"))
    return name if name and is_environment(name) else None


@dataclass(frozen=True)
class ProjectRow:
    id: str
    state: str
    tone: str
    source: str
    input: str
    environment: str
    linked_environment: str | None
    packages: int
    failed: int
    created: str
    duration: str
    terminal: bool


def project_row(state: State, now: float | None = None) -> ProjectRow:
    shown = shown_state(state)
    return ProjectRow(
        id=_text(state.get("id")),
        state=shown,
        tone=state_class(shown),
        source=source_text(state.get("source")),
        input=_text(state.get("input")),
        environment=_text(state.get("environment")),
        linked_environment=environment_link(state),
        packages=len(_items(state.get("packages"))),
        failed=len(failed_names(state)),
        created=moment(_number(state.get("created_at"))),
        duration=duration(elapsed(state, now)),
        terminal=terminal(state),
    )


@dataclass(frozen=True)
class PackageRow:
    """One package of the graph, as the table shows it."""

    name: str
    version: str
    wave: str
    state: str
    tone: str
    stage: str
    time: str
    build_id: str | None  # a build the dashboard has a page for
    cause: str  # the error, or why it was not built
    wheel: str


def package_rows(state: State) -> list[PackageRow]:
    """The packages in build order (wave by wave), as the project build recorded them."""
    rows = []
    for item in _items(state.get("packages")):
        name = _text(item.get("state")) or "waiting"
        build_id = _text(item.get("build_id"))
        wave = _number(item.get("wave"))
        rows.append(
            PackageRow(
                name=_text(item.get("name")) or "?",
                version=_text(item.get("version")),
                wave=str(int(wave)) if wave is not None else "",
                state=name,
                tone=state_class(name),
                stage=_text(item.get("stage")),
                time=duration(_number(item.get("seconds"))),
                build_id=build_id if _BUILD_ID_RE.match(build_id) else None,
                cause=_text(item.get("error")) or _text(item.get("note")),
                wheel=_text(item.get("wheel")),
            )
        )
    return rows


def failed_names(state: State) -> list[str]:
    """The packages the project build reports failed or not built."""
    names = state.get("failed")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def failures(state: State) -> list[PackageRow]:
    """The failed packages' rows (each with its cause), in the order `failed` names them."""
    wanted = failed_names(state)
    rows = {row.name: row for row in package_rows(state)}
    return [rows[name] for name in wanted if name in rows]


def _written(obj: StoredObject) -> float:
    """When the object was last written, to the microsecond (as the cursor carries it)."""
    seconds = obj.last_modified.timestamp() if obj.last_modified is not None else 0.0
    return float(f"{seconds:.6f}")


def project_id(key: str) -> str | None:
    """`projects/<id>.json` -> id; None for any other key."""
    name = key.removeprefix(PROJECT_BUILDS).removesuffix(".json")
    if key != f"{PROJECT_BUILDS}{name}.json" or not PROJECT_BUILD_ID_RE.match(name):
        return None
    return name


def cursor_of(obj: StoredObject) -> str:
    """Where the next page starts: after `obj` (its last write, then its id)."""
    return f"{_written(obj):.6f}-{project_id(obj.key)}"


def parse_cursor(cursor: str) -> tuple[float, str]:
    found = _CURSOR_RE.match(cursor)
    if found is None:
        raise InvalidRequestError(f"{cursor!r} is not a position in the list of project builds")
    return float(found.group(1)), found.group(2)


def recent(
    objects: Iterable[StoredObject], *, limit: int, before: str | None = None
) -> tuple[list[StoredObject], str | None]:
    """The `limit` project builds written last (a running one is rewritten by its heartbeat,
    a finished one was last written at its end), after the cursor `before` if given; and the
    cursor of the next page, None if there is none. Only a listing is read, no state."""
    found = [
        (_written(obj), ident, obj) for obj in objects if (ident := project_id(obj.key)) is not None
    ]
    found.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
    if before is not None:
        edge = parse_cursor(before)
        found = [entry for entry in found if (entry[0], entry[1]) < edge]
    page = [obj for _, _, obj in found[:limit]]
    return page, (cursor_of(page[-1]) if len(found) > limit else None)


def newest_first(states: Sequence[State]) -> list[State]:
    """States by creation, newest first (a page of them, once read)."""
    return sorted(states, key=lambda s: _number(s.get("created_at")) or 0.0, reverse=True)
