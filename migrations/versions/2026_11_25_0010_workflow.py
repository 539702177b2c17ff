"""Workflow: instances of declarative state machines, and their history.

Revision ID: 0010
Revises: 0002
Create Date: 2026-11-25 15:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "workflow_instances",
        sa.Column("workflow", sa.String(length=80), nullable=False),
        sa.Column("subject_type", sa.String(length=60), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=60), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_missed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_workflow_instances_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_instances")),
        sa.UniqueConstraint(
            "workflow", "subject_type", "subject_id", name=op.f("uq_workflow_instances_workflow")
        ),
    )
    op.create_index(
        op.f("ix_workflow_instances_organisation_id"), "workflow_instances", ["organisation_id"]
    )
    op.create_index(
        op.f("ix_workflow_instances_deadline_at"), "workflow_instances", ["deadline_at"]
    )
    op.create_index(
        "ix_workflow_instances_queue",
        "workflow_instances",
        ["organisation_id", "workflow", "state"],
    )
    op.create_table(
        "workflow_history",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=60), nullable=True),
        sa.Column("to_state", sa.String(length=60), nullable=False),
        sa.Column("transition", sa.String(length=60), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("actor_user_id", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["workflow_instances.id"],
            name=op.f("fk_workflow_history_instance_id_workflow_instances"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_history")),
    )
    op.create_index(op.f("ix_workflow_history_instance_id"), "workflow_history", ["instance_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_workflow_history_instance_id"), table_name="workflow_history")
    op.drop_table("workflow_history")
    op.drop_index("ix_workflow_instances_queue", table_name="workflow_instances")
    op.drop_index(op.f("ix_workflow_instances_deadline_at"), table_name="workflow_instances")
    op.drop_index(op.f("ix_workflow_instances_organisation_id"), table_name="workflow_instances")
    op.drop_table("workflow_instances")
