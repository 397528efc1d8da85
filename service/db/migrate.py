"""Bring a database to the newest schema (Alembic `upgrade head`), run at every start.

The migrations ship inside the package (`service/db/migrations`), so an installed wheel needs
no `alembic.ini`. On PostgreSQL an advisory lock serializes pods that start together.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from service.errors import CatalogError

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x77776C  # "wwl": the advisory lock of migrations


def upgrade(engine: Engine) -> None:
    """Run every migration not yet applied; `CatalogError` if the database does not answer."""
    from alembic import command  # here: a command that never opens the database skips it
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise CatalogError(f"the catalog database cannot be migrated: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300]
