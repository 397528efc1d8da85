"""`SqlCatalog`: the catalog in SQLite or PostgreSQL, through SQLAlchemy Core.

Each page question is one indexed query (a second only to tell an unknown environment from an
unknown project, on a miss). Writes are upserts keyed by (environment, request key), so
publishing a row twice, or a reindex over rows publish already wrote, changes nothing.
Driver errors become `CatalogError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Set
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from service.artifacts import Artifact
from service.config import Settings
from service.db import open_engine, upgrade
from service.db.tables import catalog_state, environments, files, projects
from service.errors import CatalogError, UnknownEnvironmentError
from service.index.model import CatalogFile, EnvironmentIndex, build_environment_index, listed

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BATCH = 500
_COLUMNS = (
    files.c.request_key,
    files.c.filename,
    files.c.version,
    files.c.sha256,
    files.c.size,
    files.c.metadata_sha256,
    files.c.requires_python,
    files.c.published_us,
    files.c.yanked,
    files.c.yanked_reason,
    files.c.verified,
    files.c.provenance_key,
)
#: what an upsert leaves as it was: the catalog's own state, which no manifest holds
_KEPT = ("id", "yanked", "yanked_reason")
_migrated: set[int] = set()
_migrate_lock = threading.Lock()


def open_catalog(settings: Settings) -> SqlCatalog:
    """The catalog of `settings.database_url`, migrated to the newest schema on first use."""
    return SqlCatalog(open_engine(settings.database_url))


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


class SqlCatalog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ids: dict[tuple[str, ...], int] = {}
        with _migrate_lock:
            if id(engine) not in _migrated:
                upgrade(engine)
                _migrated.add(id(engine))

    @property
    def engine(self) -> Engine:
        return self._engine

    def ready(self) -> None:
        if not self.filled():
            raise CatalogError("the catalog was not filled from the store yet (admin reindex)")

    def environment_names(self) -> list[str]:
        with self._connect() as conn:
            return list(conn.scalars(select(environments.c.name).order_by(environments.c.name)))

    def generation(self, environment: str) -> int:
        query = select(environments.c.generation).where(environments.c.name == environment)
        with self._connect() as conn:
            found = conn.scalar(query)
        if found is None:
            raise UnknownEnvironmentError(f"no build environment named {environment!r}")
        return int(found)

    def project_names(self, environment: str) -> list[str]:
        query = (
            select(projects.c.name)
            .join(environments, projects.c.environment_id == environments.c.id)
            .where(environments.c.name == environment)
            .order_by(projects.c.name)
        )
        with self._connect() as conn:
            names = list(conn.scalars(query))
            if not names:
                self._check_environment(conn, environment)
        return names

    def all_project_names(self) -> list[str]:
        query = select(projects.c.name).distinct().order_by(projects.c.name)
        with self._connect() as conn:
            return list(conn.scalars(query))

    def project_files(self, environment: str, project: str) -> tuple[CatalogFile, ...] | None:
        query = _files_query().where(environments.c.name == environment, projects.c.name == project)
        with self._connect() as conn:
            rows = conn.execute(query).all()
            if not rows:
                self._check_environment(conn, environment)
                return None
        return tuple(listed(_file(row) for row in rows))

    def environment(self, environment: str) -> EnvironmentIndex:
        query = _files_query().where(environments.c.name == environment)
        with self._connect() as conn:
            rows = conn.execute(query).all()
            if not rows:
                self._check_environment(conn, environment)
        return build_environment_index(environment, (_file(row) for row in rows))

    def record(self, artifact: Artifact) -> None:
        self.record_many([CatalogFile.of(artifact)])

    def record_many(self, items: Iterable[CatalogFile]) -> int:
        batch: list[CatalogFile] = []
        count = 0
        for item in items:
            batch.append(item)
            if len(batch) >= BATCH:
                count += self._write(batch)
                batch = []
        if batch:
            count += self._write(batch)
        return count

    def prune(self, keep: Set[tuple[str, str]], *, published_before_us: int) -> int:
        query = (
            select(files.c.id, environments.c.name, files.c.request_key)
            .join(environments, files.c.environment_id == environments.c.id)
            .where(files.c.published_us < published_before_us)
        )
        with self._connect(write=True) as conn:
            gone = [
                row.id for row in conn.execute(query) if (row.name, row.request_key) not in keep
            ]
            for start in range(0, len(gone), BATCH):
                conn.execute(delete(files).where(files.c.id.in_(gone[start : start + BATCH])))
            if gone:
                _bump(conn, environments.c.id.is_not(None))
                conn.execute(
                    delete(projects).where(~exists().where(files.c.project_id == projects.c.id))
                )
                conn.execute(
                    delete(environments).where(
                        ~exists().where(projects.c.environment_id == environments.c.id)
                    )
                )
                self._ids.clear()
        return len(gone)

    def set_yanked(self, environment: str, request_key: str, reason: str | None) -> bool:
        env_id = select(environments.c.id).where(environments.c.name == environment)
        query = (
            update(files)
            .where(files.c.environment_id == env_id.scalar_subquery())
            .where(files.c.request_key == request_key)
            .values(yanked=reason is not None, yanked_reason=reason or None)
        )
        with self._connect(write=True) as conn:
            changed = bool(conn.execute(query).rowcount)
            _bump(conn, environments.c.name == environment)
            return changed

    def filled(self) -> bool:
        with self._connect() as conn:
            return conn.scalar(select(catalog_state.c.filled_us)) is not None

    def mark_filled(self) -> None:
        now = int(time.time() * 1_000_000)
        with self._connect(write=True) as conn:
            stmt = self._insert(catalog_state).values(id=1, filled_us=now)
            conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"filled_us": now}))

    def count(self) -> int:
        """How many rows (files) the catalog holds."""
        with self._connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(files)) or 0)

    def _write(self, batch: list[CatalogFile]) -> int:
        try:
            return self._write_once(batch)
        except CatalogError:  # once more with fresh ids (another process may have pruned)
            return self._write_once(batch)

    def _write_once(self, batch: list[CatalogFile]) -> int:
        with self._connect(write=True) as conn:
            rows = [
                {
                    "environment_id": self._id(conn, item.environment),
                    "project_id": self._id(conn, item.environment, item.project),
                    "request_key": item.request_key,
                    "filename": item.filename,
                    "version": item.version,
                    "sha256": item.sha256,
                    "size": item.size,
                    "metadata_sha256": item.metadata_sha256,
                    "requires_python": item.requires_python,
                    "published_us": to_us(item.published_at),
                    "yanked": item.yanked,
                    "yanked_reason": item.yanked_reason,
                    "verified": item.verified_json,
                    "provenance_key": item.provenance_key,
                }
                for item in batch
            ]
            stmt = self._insert(files)
            changed = {c.name: stmt.excluded[c.name] for c in files.c if c.name not in _KEPT}
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["environment_id", "request_key"], set_=changed
                ),
                rows,
            )
            _bump(conn, environments.c.id.in_({row["environment_id"] for row in rows}))
        return len(rows)

    def _id(self, conn: Connection, environment: str, project: str | None = None) -> int:
        """The row id of an environment (or of one of its projects), made on first use."""
        key = (environment,) if project is None else (environment, project)
        known = self._ids.get(key)
        if known is not None:
            return known
        values: dict[str, Any]
        if project is None:
            table, values = environments, {"name": environment}
        else:
            table, values = (
                projects,
                {"environment_id": self._id(conn, environment), "name": project},
            )
        conn.execute(
            self._insert(table).values(**values).on_conflict_do_nothing(index_elements=list(values))
        )
        query = select(table.c.id).where(
            *(table.c[name] == value for name, value in values.items())
        )
        found = int(conn.execute(query).scalar_one())
        self._ids[key] = found
        return found

    def _insert(self, table: Any) -> Any:
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def _check_environment(conn: Connection, environment: str) -> None:
        query = select(environments.c.id).where(environments.c.name == environment)
        if conn.execute(query).first() is None:
            raise UnknownEnvironmentError(f"no build environment named {environment!r}")

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[Connection]:
        try:
            with self._engine.begin() if write else self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            if write:
                self._ids.clear()  # a rolled-back insert may have cached an id
            message = str(exc).splitlines()[0][:300]
            raise CatalogError(f"the catalog database does not answer: {message}") from None


def _bump(conn: Connection, which: Any) -> None:
    """A new generation for the environments `which` selects: their cached pages are stale."""
    conn.execute(update(environments).where(which).values(generation=environments.c.generation + 1))


def _files_query() -> Select[Any]:
    return (
        select(
            environments.c.name.label("environment"), projects.c.name.label("project"), *_COLUMNS
        )
        .select_from(files)
        .join(projects, files.c.project_id == projects.c.id)
        .join(environments, files.c.environment_id == environments.c.id)
        .order_by(projects.c.name, files.c.filename)
    )


def _file(row: Row[Any]) -> CatalogFile:
    return CatalogFile(
        environment=row.environment,
        request_key=row.request_key,
        project=row.project,
        filename=row.filename,
        version=row.version,
        sha256=row.sha256,
        size=row.size,
        metadata_sha256=row.metadata_sha256,
        requires_python=row.requires_python,
        published_at=from_us(row.published_us),
        verified_json=row.verified,
        yanked=bool(row.yanked),
        yanked_reason=row.yanked_reason,
        provenance_key=row.provenance_key,
    )
