"""Tables: workflow instances (one per subject and workflow) and their history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from civic.kernel.db import Base, IdMixin, TimestampMixin, UtcDateTime, utcnow

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class WorkflowInstance(IdMixin, TimestampMixin, Base):
    """Where one subject (an inspection request, an application) stands in its workflow."""

    __tablename__ = "workflow_instances"
    __table_args__ = (
        UniqueConstraint("workflow", "subject_type", "subject_id"),
        Index("ix_workflow_instances_queue", "organisation_id", "workflow", "state"),
    )

    workflow: Mapped[str] = mapped_column(String(80))
    subject_type: Mapped[str] = mapped_column(String(60))
    subject_id: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    state: Mapped[str] = mapped_column(String(60))
    deadline_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    deadline_missed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Two people acting on one instance at once: the second one's change is refused, not lost.
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class WorkflowHistory(Base):
    """One step of an instance: from which state to which, by whom, when and why."""

    __tablename__ = "workflow_history"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("workflow_instances.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(60))
    to_state: Mapped[str] = mapped_column(String(60))
    transition: Mapped[str] = mapped_column(String(60))
    actor: Mapped[str] = mapped_column(String(120))
    actor_user_id: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
