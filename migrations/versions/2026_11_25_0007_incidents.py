"""Incidents: the shared incident, its status timeline, units, notes, media and number counters.

Revision ID: 0007
Revises: 0002
Create Date: 2026-11-25 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("subtype", sa.String(length=60), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reporter_name", sa.String(length=100), nullable=True),
        sa.Column("reporter_phone", sa.String(length=40), nullable=True),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("request_digest", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("closed_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_incidents_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("organisation_id", "number", name="uq_incidents_number"),
        sa.UniqueConstraint(
            "organisation_id", "idempotency_key", name="uq_incidents_idempotency_key"
        ),
    )
    op.create_index(op.f("ix_incidents_organisation_id"), "incidents", ["organisation_id"])
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"])
    op.create_table(
        "incident_timeline",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_timeline_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_timeline")),
    )
    op.create_index(op.f("ix_incident_timeline_incident_id"), "incident_timeline", ["incident_id"])
    op.create_table(
        "incident_units",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_units_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_units")),
        sa.UniqueConstraint("incident_id", "unit_id", name="uq_incident_units_unit"),
    )
    op.create_index(op.f("ix_incident_units_incident_id"), "incident_units", ["incident_id"])
    op.create_table(
        "incident_notes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("author", sa.String(length=120), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_notes_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_notes")),
    )
    op.create_index(op.f("ix_incident_notes_incident_id"), "incident_notes", ["incident_id"])
    op.create_table(
        "incident_media",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("media_id", sa.String(length=64), nullable=False),
        sa.Column("caption", sa.String(length=200), nullable=True),
        sa.Column("added_by", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_media_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_media")),
        sa.UniqueConstraint("incident_id", "media_id", name="uq_incident_media_media"),
    )
    op.create_index(op.f("ix_incident_media_incident_id"), "incident_media", ["incident_id"])
    op.create_table(
        "incident_counters",
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_incident_counters_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("organisation_id", "year", name=op.f("pk_incident_counters")),
    )


def downgrade() -> None:
    op.drop_table("incident_counters")
    op.drop_index(op.f("ix_incident_media_incident_id"), table_name="incident_media")
    op.drop_table("incident_media")
    op.drop_index(op.f("ix_incident_notes_incident_id"), table_name="incident_notes")
    op.drop_table("incident_notes")
    op.drop_index(op.f("ix_incident_units_incident_id"), table_name="incident_units")
    op.drop_table("incident_units")
    op.drop_index(op.f("ix_incident_timeline_incident_id"), table_name="incident_timeline")
    op.drop_table("incident_timeline")
    op.drop_index(op.f("ix_incidents_status"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_organisation_id"), table_name="incidents")
    op.drop_table("incidents")
