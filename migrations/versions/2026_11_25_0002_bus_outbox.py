"""Event bus: outbox, processed events per subscriber, dead letters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:45:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bus_outbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bus_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_bus_outbox_event_id")),
    )
    op.create_index(op.f("ix_bus_outbox_name"), "bus_outbox", ["name"])
    op.create_index(op.f("ix_bus_outbox_published_at"), "bus_outbox", ["published_at"])
    op.create_table(
        "bus_processed",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("subscriber", sa.String(length=120), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bus_processed")),
        sa.UniqueConstraint("subscriber", "event_id", name=op.f("uq_bus_processed_subscriber")),
    )
    op.create_table(
        "bus_dead_letters",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("subscriber", sa.String(length=120), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bus_dead_letters")),
    )
    op.create_index(op.f("ix_bus_dead_letters_subscriber"), "bus_dead_letters", ["subscriber"])
    op.create_index(op.f("ix_bus_dead_letters_event_id"), "bus_dead_letters", ["event_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_bus_dead_letters_event_id"), table_name="bus_dead_letters")
    op.drop_index(op.f("ix_bus_dead_letters_subscriber"), table_name="bus_dead_letters")
    op.drop_table("bus_dead_letters")
    op.drop_table("bus_processed")
    op.drop_index(op.f("ix_bus_outbox_published_at"), table_name="bus_outbox")
    op.drop_index(op.f("ix_bus_outbox_name"), table_name="bus_outbox")
    op.drop_table("bus_outbox")
