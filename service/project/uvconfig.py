"""The result of a project build: the uv configuration for exactly the packages built here.

One `[[tool.uv.index]]` (this environment's page on the service), first among the project's
indexes, and one `[tool.uv.sources]` entry per built package pointing at it. uv applies sources
to the project's direct dependencies only, so the index is `explicit = true` (used for nothing
but those sources) only when every built package is a direct dependency; when one is a
dependency of a dependency, the index is left searchable, and being first, uv's default
first-index strategy takes that package from it (it serves nothing else). Printed, or written
into the project's pyproject.toml with tomlkit, which keeps the user's formatting and comments.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from tomlkit.container import OutOfOrderTableProxy
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

from service.errors import InvalidRequestError
from service.index_config import INDEX_NAME

TRANSITIVE_NOTE = "not explicit: [tool.uv.sources] routes direct dependencies only, not {names}"


def direct_dependencies(data: Mapping[str, Any]) -> set[str]:
    """The names the project itself requires: dependencies, extras and dependency groups."""
    project = data.get("project", {})
    texts: list[Any] = list(project.get("dependencies", []))
    for extra in dict(project.get("optional-dependencies", {})).values():
        texts += list(extra)
    for group in dict(data.get("dependency-groups", {})).values():
        texts += [t for t in group if isinstance(t, str)]
    names: set[str] = set()
    for text in texts:
        try:
            names.add(canonicalize_name(Requirement(str(text)).name))
        except InvalidRequirement:
            continue
    return names


def uv_config_text(
    index_url: str, packages: Sequence[str], *, direct: Iterable[str], name: str = INDEX_NAME
) -> str:
    """The block to paste into pyproject.toml (first among its indexes)."""
    names = sorted({canonicalize_name(p) for p in packages})
    transitive = sorted(set(names) - set(direct))
    lines = ["[[tool.uv.index]]", f'name = "{name}"', f'url = "{index_url}"']
    if transitive:
        lines += [f"# {TRANSITIVE_NOTE.format(names=', '.join(transitive))}", "explicit = false"]
    else:
        lines.append("explicit = true")
    lines += ["", "[tool.uv.sources]", *(f'{n} = {{ index = "{name}" }}' for n in names)]
    return "\n".join(lines) + "\n"


def write_uv_config(
    pyproject: Path, index_url: str, packages: Sequence[str], *, name: str = INDEX_NAME
) -> str:
    """Merge the configuration into `pyproject` (written in place, atomically); its new text.

    Our index goes first among the project's indexes (an index of the same name is replaced);
    the built packages' sources are set; everything else is left as it was."""
    try:
        text = pyproject.read_text(encoding="utf-8")
        document = tomlkit.parse(text)
    except (OSError, TOMLKitError) as exc:
        raise InvalidRequestError(f"cannot read {pyproject}: {exc}") from None
    names = sorted({canonicalize_name(p) for p in packages})
    transitive = sorted(set(names) - direct_dependencies(tomllib.loads(text)))
    tool = _table(document, "tool", where=pyproject)
    uv = _table(tool, "uv", where=pyproject)
    indexes = uv.get("index")
    if indexes is None:
        uv["index"] = tomlkit.aot()
        indexes = uv["index"]
    if not isinstance(indexes, AoT):
        raise InvalidRequestError(f"{pyproject}: tool.uv.index must be an array of tables")
    entry = tomlkit.table()
    entry.update({"name": name, "url": index_url})
    if transitive:
        entry.add(tomlkit.comment(TRANSITIVE_NOTE.format(names=", ".join(transitive))))
    entry.add("explicit", not transitive)
    entry.add(tomlkit.nl())
    kept = [table for table in indexes if table.get("name") != name]
    indexes.clear()
    for table in (entry, *kept):
        indexes.append(table)
    new_sources = "sources" not in uv
    sources = _table(uv, "sources", where=pyproject)
    for package in names:
        inline = tomlkit.inline_table()
        inline.update({"index": name})
        sources[package] = inline
    if new_sources and isinstance(sources, Table):
        sources.add(tomlkit.nl())
    text = tomlkit.dumps(document).rstrip("\n") + "\n"
    if "\n[[tool.uv.index]]" in text and "\n\n[[tool.uv.index]]" not in text:
        text = text.replace("\n[[tool.uv.index]]", "\n\n[[tool.uv.index]]", 1)
    scratch = pyproject.with_name(f".{pyproject.name}.wheelwright")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(pyproject)
    return text


Section = Table | OutOfOrderTableProxy  # a table split in pieces ([[tool.uv.index]], [tool.uv])


def _table(parent: tomlkit.TOMLDocument | Section, key: str, *, where: Path) -> Section:
    found = parent.get(key)
    if found is None:
        found = tomlkit.table(is_super_table=key in ("tool", "uv"))
        parent[key] = found
        found = parent[key]
    if not isinstance(found, Table | OutOfOrderTableProxy):
        raise InvalidRequestError(f"{where}: {key} must be a table")
    return found
