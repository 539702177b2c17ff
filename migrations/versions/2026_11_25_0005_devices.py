"""Devices: registry, telemetry and rollups, alarm rules and alarms, commands.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-25 14:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def _organisation_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organisation_id"],
        ["organisations.id"],
        name=op.f(f"fk_{table}_organisation_id_organisations"),
    )


def _device_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["device_id"],
        ["devices.id"],
        name=op.f(f"fk_{table}_device_id_devices"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("configuration", sa.JSON(), nullable=False),
        sa.Column("firmware", sa.String(length=60), nullable=True),
        sa.Column("credential_hash", sa.String(length=64), nullable=True),
        sa.Column("last_seen_at", TIME, nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        _organisation_fk("devices"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("credential_hash", name=op.f("uq_devices_credential_hash")),
        sa.UniqueConstraint(
            "organisation_id", "external_id", name=op.f("uq_devices_organisation_id")
        ),
    )
    op.create_index(op.f("ix_devices_kind"), "devices", ["kind"])
    op.create_index(op.f("ix_devices_organisation_id"), "devices", ["organisation_id"])

    op.create_table(
        "device_telemetry",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("sampled_at", TIME, nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        _device_fk("device_telemetry"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_telemetry")),
        sa.UniqueConstraint("device_id", "message_id", name=op.f("uq_device_telemetry_device_id")),
    )
    op.create_index(
        "ix_device_telemetry_device_id_sampled_at",
        "device_telemetry",
        ["device_id", "sampled_at"],
    )
    op.create_index(op.f("ix_device_telemetry_received_at"), "device_telemetry", ["received_at"])

    op.create_table(
        "device_rollups",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("metric", sa.String(length=60), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("bucket", TIME, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("minimum", sa.Float(), nullable=False),
        sa.Column("maximum", sa.Float(), nullable=False),
        _device_fk("device_rollups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_rollups")),
        sa.UniqueConstraint(
            "device_id",
            "metric",
            "resolution",
            "bucket",
            name=op.f("uq_device_rollups_device_id"),
        ),
    )

    op.create_table(
        "device_alarm_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=True),
        sa.Column("device_id", sa.String(length=32), nullable=True),
        sa.Column("metric", sa.String(length=60), nullable=True),
        sa.Column("operator", sa.String(length=2), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("for_seconds", sa.Float(), nullable=False),
        sa.Column("times_in_row", sa.Integer(), nullable=False),
        sa.Column("silent_seconds", sa.Float(), nullable=True),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _organisation_fk("device_alarm_rules"),
        _device_fk("device_alarm_rules"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_alarm_rules")),
    )
    op.create_index(
        op.f("ix_device_alarm_rules_organisation_id"), "device_alarm_rules", ["organisation_id"]
    )

    op.create_table(
        "device_alarms",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("raised_at", TIME, nullable=False),
        sa.Column("cleared_at", TIME, nullable=True),
        sa.Column("acknowledged_at", TIME, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=32), nullable=True),
        sa.Column("escalated_at", TIME, nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        _organisation_fk("device_alarms"),
        _device_fk("device_alarms"),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["device_alarm_rules.id"],
            name=op.f("fk_device_alarms_rule_id_device_alarm_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_alarms")),
    )
    op.create_index(op.f("ix_device_alarms_device_id"), "device_alarms", ["device_id"])
    op.create_index(op.f("ix_device_alarms_organisation_id"), "device_alarms", ["organisation_id"])
    op.create_index("ix_device_alarms_status_raised_at", "device_alarms", ["status", "raised_at"])

    op.create_table(
        "device_commands",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=True),
        sa.Column("sent_at", TIME, nullable=True),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _organisation_fk("device_commands"),
        _device_fk("device_commands"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_commands")),
    )
    op.create_index(op.f("ix_device_commands_device_id"), "device_commands", ["device_id"])
    op.create_index(
        op.f("ix_device_commands_organisation_id"), "device_commands", ["organisation_id"]
    )
    op.create_index(op.f("ix_device_commands_status"), "device_commands", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_device_commands_status"), table_name="device_commands")
    op.drop_index(op.f("ix_device_commands_organisation_id"), table_name="device_commands")
    op.drop_index(op.f("ix_device_commands_device_id"), table_name="device_commands")
    op.drop_table("device_commands")
    op.drop_index("ix_device_alarms_status_raised_at", table_name="device_alarms")
    op.drop_index(op.f("ix_device_alarms_organisation_id"), table_name="device_alarms")
    op.drop_index(op.f("ix_device_alarms_device_id"), table_name="device_alarms")
    op.drop_table("device_alarms")
    op.drop_index(op.f("ix_device_alarm_rules_organisation_id"), table_name="device_alarm_rules")
    op.drop_table("device_alarm_rules")
    op.drop_table("device_rollups")
    op.drop_index(op.f("ix_device_telemetry_received_at"), table_name="device_telemetry")
    op.drop_index("ix_device_telemetry_device_id_sampled_at", table_name="device_telemetry")
    op.drop_table("device_telemetry")
    op.drop_index(op.f("ix_devices_organisation_id"), table_name="devices")
    op.drop_index(op.f("ix_devices_kind"), table_name="devices")
    op.drop_table("devices")
