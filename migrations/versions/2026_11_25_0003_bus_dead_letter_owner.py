"""Event bus at scale: dead letters carry the organisation of their event.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot add an indexed column to a table in place everywhere.
    with op.batch_alter_table("bus_dead_letters") as batch:
        batch.add_column(sa.Column("organisation_id", sa.String(length=32), nullable=True))
        batch.create_index(batch.f("ix_bus_dead_letters_organisation_id"), ["organisation_id"])


def downgrade() -> None:
    with op.batch_alter_table("bus_dead_letters") as batch:
        batch.drop_index(batch.f("ix_bus_dead_letters_organisation_id"))
        batch.drop_column("organisation_id")
