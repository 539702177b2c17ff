"""Tracking: subjects with their last position, and the history of positions.

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-25 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tracking_subjects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("last_lat", sa.Float(), nullable=True),
        sa.Column("last_lon", sa.Float(), nullable=True),
        sa.Column("last_accuracy_m", sa.Float(), nullable=True),
        sa.Column("last_speed_mps", sa.Float(), nullable=True),
        sa.Column("last_heading_deg", sa.Float(), nullable=True),
        sa.Column("last_device_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_source", sa.String(length=20), nullable=True),
        sa.Column("signal_lost_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_tracking_subjects_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_subjects")),
        sa.UniqueConstraint(
            "organisation_id",
            "kind",
            "external_id",
            name=op.f("uq_tracking_subjects_organisation_id"),
        ),
    )
    op.create_index(
        op.f("ix_tracking_subjects_organisation_id"), "tracking_subjects", ["organisation_id"]
    )
    op.create_table(
        "tracking_positions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.Column("heading_deg", sa.Float(), nullable=True),
        sa.Column("device_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["tracking_subjects.id"],
            name=op.f("fk_tracking_positions_subject_id_tracking_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_positions")),
    )
    op.create_index(
        "ix_tracking_positions_subject_time", "tracking_positions", ["subject_id", "device_time"]
    )
    op.create_index("ix_tracking_positions_device_time", "tracking_positions", ["device_time"])


def downgrade() -> None:
    op.drop_index("ix_tracking_positions_device_time", table_name="tracking_positions")
    op.drop_index("ix_tracking_positions_subject_time", table_name="tracking_positions")
    op.drop_table("tracking_positions")
    op.drop_index(op.f("ix_tracking_subjects_organisation_id"), table_name="tracking_subjects")
    op.drop_table("tracking_subjects")
