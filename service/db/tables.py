"""The catalog's tables (SQLAlchemy Core): what the migrations create, what queries name.

A file is one committed manifest, keyed by (environment, request key) as the store keys it;
its project and environment are rows of their own, so each index page is one indexed query.
Times are integer microseconds since the epoch: exact on every database, so a page rendered
from a row is byte for byte the page rendered from the manifest.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

environments = Table(
    "environments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    #: bumped by every write to the environment's rows: the key of its cached pages
    Column("generation", BigInteger, nullable=False, server_default=text("0")),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("environment_id", Integer, ForeignKey("environments.id"), nullable=False),
    Column("name", String(200), nullable=False),
    UniqueConstraint("environment_id", "name", name="uq_projects_environment_name"),
)

files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("environment_id", Integer, ForeignKey("environments.id"), nullable=False),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("request_key", String(200), nullable=False),
    Column("filename", String(400), nullable=False),
    Column("version", String(200), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("metadata_sha256", String(64), nullable=False),
    Column("requires_python", String(400), nullable=True),
    Column("published_us", BigInteger, nullable=False),
    Column("yanked", Boolean, nullable=False, default=False),
    Column("yanked_reason", Text, nullable=True),
    #: what verify proved (`verified_summary`), as JSON text: key order kept for the pages
    Column("verified", Text, nullable=True),
    #: the store key of its signed provenance (PEP 740's link), if it has one
    Column("provenance_key", Text, nullable=True),
    UniqueConstraint("environment_id", "request_key", name="uq_files_environment_request"),
    Index("ix_files_project_filename", "project_id", "filename"),
)

#: One row (id 1): when the catalog was last filled from the store's manifests.
catalog_state = Table(
    "catalog_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("filled_us", BigInteger, nullable=True),
)
