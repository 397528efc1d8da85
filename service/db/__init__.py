"""The SQL database: one engine per URL, its tables, and the migrations that make them."""

from __future__ import annotations

from service.db.engine import open_engine
from service.db.migrate import upgrade

__all__ = ["open_engine", "upgrade"]
