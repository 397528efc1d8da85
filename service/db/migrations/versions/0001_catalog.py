"""The index catalog: environments, projects, files, and when it was filled from the store.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment_id", sa.Integer, sa.ForeignKey("environments.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.UniqueConstraint("environment_id", "name", name="uq_projects_environment_name"),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment_id", sa.Integer, sa.ForeignKey("environments.id"), nullable=False),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("request_key", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(400), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("metadata_sha256", sa.String(64), nullable=False),
        sa.Column("requires_python", sa.String(400), nullable=True),
        sa.Column("published_us", sa.BigInteger, nullable=False),
        sa.Column("yanked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("yanked_reason", sa.Text, nullable=True),
        sa.Column("verified", sa.Text, nullable=True),
        sa.UniqueConstraint("environment_id", "request_key", name="uq_files_environment_request"),
    )
    op.create_index("ix_files_project_filename", "files", ["project_id", "filename"])
    op.create_table(
        "catalog_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("filled_us", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("catalog_state")
    op.drop_index("ix_files_project_filename", "files")
    op.drop_table("files")
    op.drop_table("projects")
    op.drop_table("environments")
