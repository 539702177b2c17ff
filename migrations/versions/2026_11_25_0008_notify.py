"""Notifications: messages, deliveries and tries, dev inbox, preferences, push subscriptions.

Revision ID: 0008
Revises: 0002
Create Date: 2026-11-25 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notify_messages",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=True),
        sa.Column("template", sa.String(length=120), nullable=False),
        sa.Column("urgency", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.JSON(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("quiet_hours", sa.String(length=11), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_messages")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_notify_messages_idempotency_key")),
    )
    op.create_index(
        op.f("ix_notify_messages_organisation_id"), "notify_messages", ["organisation_id"]
    )
    op.create_table(
        "notify_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("transport", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("fallbacks", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=False),
        sa.Column("held_until", WHEN, nullable=True),
        sa.Column("locked_until", WHEN, nullable=True),
        sa.Column("sent_at", WHEN, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["notify_messages.id"],
            name=op.f("fk_notify_deliveries_message_id_notify_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_deliveries")),
    )
    op.create_index(op.f("ix_notify_deliveries_message_id"), "notify_deliveries", ["message_id"])
    op.create_index(op.f("ix_notify_deliveries_transport"), "notify_deliveries", ["transport"])
    op.create_index("ix_notify_deliveries_due", "notify_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "notify_attempts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["notify_deliveries.id"],
            name=op.f("fk_notify_attempts_delivery_id_notify_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_attempts")),
    )
    op.create_index(op.f("ix_notify_attempts_delivery_id"), "notify_attempts", ["delivery_id"])
    op.create_table(
        "notify_dev_inbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("template", sa.String(length=120), nullable=False),
        sa.Column("urgency", sa.String(length=20), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("received_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_dev_inbox")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_notify_dev_inbox_delivery_id")),
    )
    op.create_index(op.f("ix_notify_dev_inbox_message_id"), "notify_dev_inbox", ["message_id"])
    op.create_index(op.f("ix_notify_dev_inbox_address"), "notify_dev_inbox", ["address"])
    op.create_index(op.f("ix_notify_dev_inbox_received_at"), "notify_dev_inbox", ["received_at"])
    op.create_table(
        "notify_preferences",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("subject", sa.String(length=340), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=True),
        sa.Column("quiet_hours", sa.String(length=11), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_preferences")),
        sa.UniqueConstraint("subject", name=op.f("uq_notify_preferences_subject")),
    )
    op.create_table(
        "notify_push_subscriptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("endpoint_hash", sa.String(length=64), nullable=False),
        sa.Column("p256dh", sa.String(length=200), nullable=False),
        sa.Column("auth", sa.String(length=100), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("last_used_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notify_push_subscriptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_push_subscriptions")),
        sa.UniqueConstraint(
            "endpoint_hash", name=op.f("uq_notify_push_subscriptions_endpoint_hash")
        ),
    )
    op.create_index(
        op.f("ix_notify_push_subscriptions_user_id"), "notify_push_subscriptions", ["user_id"]
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_notify_push_subscriptions_user_id"), table_name="notify_push_subscriptions"
    )
    op.drop_table("notify_push_subscriptions")
    op.drop_table("notify_preferences")
    op.drop_index(op.f("ix_notify_dev_inbox_received_at"), table_name="notify_dev_inbox")
    op.drop_index(op.f("ix_notify_dev_inbox_address"), table_name="notify_dev_inbox")
    op.drop_index(op.f("ix_notify_dev_inbox_message_id"), table_name="notify_dev_inbox")
    op.drop_table("notify_dev_inbox")
    op.drop_index(op.f("ix_notify_attempts_delivery_id"), table_name="notify_attempts")
    op.drop_table("notify_attempts")
    op.drop_index("ix_notify_deliveries_due", table_name="notify_deliveries")
    op.drop_index(op.f("ix_notify_deliveries_transport"), table_name="notify_deliveries")
    op.drop_index(op.f("ix_notify_deliveries_message_id"), table_name="notify_deliveries")
    op.drop_table("notify_deliveries")
    op.drop_index(op.f("ix_notify_messages_organisation_id"), table_name="notify_messages")
    op.drop_table("notify_messages")
