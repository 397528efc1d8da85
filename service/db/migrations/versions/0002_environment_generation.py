"""Each environment's generation: bumped by every write to its rows, so an API's cached pages
of that environment are known stale by one small query, whichever process published.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.add_column(
            sa.Column("generation", sa.BigInteger, nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("generation")
