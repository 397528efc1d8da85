"""The result of a project build: the uv configuration for exactly the packages built here.

One explicit `[[tool.uv.index]]` (this environment's page on the service) and one
`[tool.uv.sources]` entry per built package pointing at it, so uv takes those packages from our
index and nothing else from it. Printed, or written into the project's pyproject.toml with
tomlkit, which keeps the user's formatting and comments; an index of the same name and the
sources of the built packages are replaced, everything else is left as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import tomlkit
from packaging.utils import canonicalize_name
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

from service.errors import InvalidRequestError
from service.index_config import INDEX_NAME, render_uv_config


def uv_config_text(index_url: str, packages: Sequence[str], *, name: str = INDEX_NAME) -> str:
    """The block to paste: the same text `wheelwright index-config` prints."""
    base, _, environment = index_url.rstrip("/").rpartition("/simple/")
    text = render_uv_config(base, environment, packages)
    return text.replace(f'"{INDEX_NAME}"', f'"{name}"') if name != INDEX_NAME else text


def write_uv_config(
    pyproject: Path, index_url: str, packages: Sequence[str], *, name: str = INDEX_NAME
) -> str:
    """Merge the configuration into `pyproject` (written in place, atomically); its new text."""
    try:
        document = tomlkit.parse(pyproject.read_text(encoding="utf-8"))
    except (OSError, TOMLKitError) as exc:
        raise InvalidRequestError(f"cannot read {pyproject}: {exc}") from None
    tool = _table(document, "tool", where=pyproject)
    uv = _table(tool, "uv", where=pyproject)
    indexes = uv.get("index")
    if indexes is None:
        indexes = tomlkit.aot()
        uv.append("index", indexes)
    if not isinstance(indexes, AoT):
        raise InvalidRequestError(f"{pyproject}: tool.uv.index must be an array of tables")
    entry = tomlkit.table()
    entry.update({"name": name, "url": index_url, "explicit": True})
    same = [i for i, table in enumerate(indexes) if table.get("name") == name]
    if same:
        indexes[same[0]] = entry
    else:
        indexes.append(entry)
    sources = _table(uv, "sources", where=pyproject)
    for package in sorted({canonicalize_name(p) for p in packages}):
        inline = tomlkit.inline_table()
        inline.update({"index": name})
        sources[package] = inline
    text = tomlkit.dumps(document)
    if "\n[[tool.uv.index]]" in text and "\n\n[[tool.uv.index]]" not in text:
        text = text.replace("\n[[tool.uv.index]]", "\n\n[[tool.uv.index]]", 1)
    scratch = pyproject.with_name(f".{pyproject.name}.wheelwright")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(pyproject)
    return text


def _table(parent: tomlkit.TOMLDocument | Table, key: str, *, where: Path) -> Table:
    found = parent.get(key)
    if found is None:
        found = tomlkit.table(is_super_table=key in ("tool", "uv"))
        parent.append(key, found)
    if not isinstance(found, Table):
        raise InvalidRequestError(f"{where}: {key} must be a table")
    return found
