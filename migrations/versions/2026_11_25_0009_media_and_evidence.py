"""Media and evidence: uploaded files per organisation, append-only hash-chained evidence.

Revision ID: 0009
Revises: 0002
Create Date: 2026-11-25 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("evidence_records", "evidence_media")


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("original_filename", sa.String(length=255), nullable=True),
        sa.Column("uploaded_by", sa.String(length=120), nullable=False),
        sa.Column("uploaded_by_user_id", sa.String(length=32), nullable=True),
        sa.Column("link_id", sa.String(length=32), nullable=True),
        sa.Column("thumbnail_sha256", sa.String(length=64), nullable=True),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_media_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
        sa.UniqueConstraint("organisation_id", "sha256", name=op.f("uq_media_organisation_id")),
    )
    op.create_index(op.f("ix_media_organisation_id"), "media", ["organisation_id"])
    op.create_index(op.f("ix_media_sha256"), "media", ["sha256"])
    op.create_table(
        "evidence_records",
        sa.Column("seq", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("case_type", sa.String(length=60), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=120), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_evidence_records_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_evidence_records")),
        sa.UniqueConstraint("previous_hash", name=op.f("uq_evidence_records_previous_hash")),
        sa.UniqueConstraint("record_hash", name=op.f("uq_evidence_records_record_hash")),
    )
    op.create_index(
        op.f("ix_evidence_records_organisation_id"), "evidence_records", ["organisation_id"]
    )
    op.create_index("ix_evidence_records_case", "evidence_records", ["case_type", "case_id"])
    op.create_table(
        "evidence_media",
        sa.Column("seq", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["seq"],
            ["evidence_records.seq"],
            name=op.f("fk_evidence_media_seq_evidence_records"),
        ),
        sa.PrimaryKeyConstraint("seq", "sha256", name=op.f("pk_evidence_media")),
    )
    op.create_index(op.f("ix_evidence_media_sha256"), "evidence_media", ["sha256"])
    _append_only()


def _append_only() -> None:
    # Evidence is kept as recorded: the database itself refuses to change or remove it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION evidence_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END;
            $$ LANGUAGE plpgsql
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION evidence_append_only()"
            )
    else:
        for table in APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


def _drop_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION evidence_append_only()")
    else:
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_no_update")
            op.execute(f"DROP TRIGGER {table}_no_delete")


def downgrade() -> None:
    _drop_append_only()
    op.drop_index(op.f("ix_evidence_media_sha256"), table_name="evidence_media")
    op.drop_table("evidence_media")
    op.drop_index("ix_evidence_records_case", table_name="evidence_records")
    op.drop_index(op.f("ix_evidence_records_organisation_id"), table_name="evidence_records")
    op.drop_table("evidence_records")
    op.drop_index(op.f("ix_media_sha256"), table_name="media")
    op.drop_index(op.f("ix_media_organisation_id"), table_name="media")
    op.drop_table("media")
