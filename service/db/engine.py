"""One SQLAlchemy engine per database URL, shared by every thread of the process.

SQLite (the embedded default) runs in WAL mode with a busy timeout, so the worker's publish and
the API's reads share one file across processes; PostgreSQL is reached through psycopg v3.
Errors of the driver never leave this package's callers: they become `CatalogError`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from service.errors import ConfigError

_engines: dict[str, Engine] = {}
_lock = threading.Lock()
SQLITE_BUSY_MS = 30_000


def open_engine(url: str) -> Engine:
    """The process's engine for `url` (made on first use); `ConfigError` for a bad URL."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        return engine


def _create(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("database.url is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"database.url: {backend!r} is not supported (sqlite or postgresql)")
    if backend == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if backend == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_MS / 1000})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=10)
    except NoSuchModuleError as exc:
        raise ConfigError(f"database.url: {exc}") from None


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
