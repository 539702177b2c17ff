"""Starting instances, taking transitions, history, and reporting missed deadlines."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from civic.kernel.bus import Event, publish
from civic.kernel.db import utcnow
from civic.kernel.identity import Principal
from civic.kernel.workflow.definition import (
    CREATED,
    DEADLINE_MISSED,
    ConcurrentTransition,
    DeadlineRule,
    GuardFailed,
    IllegalTransition,
    Transition,
    TransitionContext,
    TransitionForbidden,
    Workflow,
    WorkflowProblem,
    get_workflow,
)
from civic.kernel.workflow.models import WorkflowHistory, WorkflowInstance

log = structlog.get_logger("civic.workflow")
SYSTEM = "system"


class WorkflowTransitioned(Event):
    """An instance moved to a new state (from_state None: it was created)."""

    name = "workflow.transitioned"
    workflow: str
    instance_id: str
    subject_type: str
    subject_id: str
    transition: str
    from_state: str | None
    to_state: str
    actor: str
    deadline_at: datetime | None = None

    def key(self) -> str:
        """Order per instance."""
        return self.instance_id


class WorkflowDeadlineMissed(Event):
    """An instance stayed in a state past its deadline."""

    name = "workflow.deadline_missed"
    workflow: str
    instance_id: str
    subject_type: str
    subject_id: str
    state: str
    deadline_at: datetime

    def key(self) -> str:
        """Order per instance."""
        return self.instance_id


def _deadline(rule: DeadlineRule, context: TransitionContext) -> datetime | None:
    if rule is None:
        return None
    if isinstance(rule, timedelta):
        return context.now + rule
    return rule(context)


async def _run_guard(transition: Transition, context: TransitionContext) -> None:
    if transition.guard is None:
        return
    reason = transition.guard(context)
    if inspect.isawaitable(reason):
        reason = await reason
    if reason is not None:
        raise GuardFailed(transition, str(reason))


def _check_actor(
    workflow: Workflow,
    instance: WorkflowInstance,
    transition: Transition,
    principal: Principal | None,
) -> None:
    if principal is None:
        return  # the system: jobs and checks that services run themselves
    if principal.via == "link":
        scope = principal.link
        own = scope is not None and (scope.subject_type, scope.subject_id) == (
            instance.subject_type,
            instance.subject_id,
        )
        if transition.citizen_link and own:
            return
        raise TransitionForbidden(workflow, transition)
    if not workflow.may_take(transition, principal):
        raise TransitionForbidden(workflow, transition)


async def start(
    session: AsyncSession,
    *,
    workflow: Workflow,
    subject_type: str,
    subject_id: str,
    organisation_id: str,
    principal: Principal | None = None,
    note: str | None = None,
    data: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> WorkflowInstance:
    """Create the instance of a subject in the initial state; one per subject and workflow."""
    now = now or utcnow()
    instance = WorkflowInstance(
        workflow=workflow.name,
        subject_type=subject_type,
        subject_id=subject_id,
        organisation_id=organisation_id,
        state=workflow.initial,
        created_at=now,
        updated_at=now,
    )
    context = TransitionContext(
        session=session,
        workflow=workflow,
        instance=instance,
        transition=None,
        principal=principal,
        actor=principal.name if principal else SYSTEM,
        from_state=None,
        note=note,
        data=data or {},
        now=now,
    )
    instance.deadline_at = _deadline(workflow.start_deadline, context)
    try:
        async with session.begin_nested():
            session.add(instance)
    except IntegrityError as exc:
        raise WorkflowProblem(
            409,
            f"{subject_type}:{subject_id}은(는) 이미 '{workflow.name}' 절차에 있습니다.",
            code="exists",
        ) from exc
    await _record(context, to_state=instance.state, transition=CREATED)
    for hook in workflow.hooks:
        await hook(context)
    return instance


async def apply(
    session: AsyncSession,
    *,
    instance: WorkflowInstance,
    transition: str,
    principal: Principal | None,
    note: str | None = None,
    data: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> WorkflowInstance:
    """Take a transition: checks state, role, guard; records history, deadline and event.

    principal None is the system (a job); hooks run in the caller's transaction, so a
    failing hook undoes the transition with everything else.
    """
    workflow = get_workflow(instance.workflow)
    step = workflow.transition(transition)
    if principal is not None and principal.organisation_id != instance.organisation_id:
        raise WorkflowProblem(
            404, "처리할 건을 찾을 수 없습니다 (no such instance).", code="absent"
        )
    if instance.state not in step.sources:
        raise IllegalTransition(workflow, instance.state, step)
    _check_actor(workflow, instance, step, principal)
    now = now or utcnow()
    context = TransitionContext(
        session=session,
        workflow=workflow,
        instance=instance,
        transition=step,
        principal=principal,
        actor=principal.name if principal else SYSTEM,
        from_state=instance.state,
        note=note,
        data=data or {},
        now=now,
    )
    await _run_guard(step, context)
    instance.state = step.target
    instance.deadline_at = (
        None if workflow.states[step.target].final else _deadline(step.deadline, context)
    )
    instance.deadline_missed_at = None
    instance.updated_at = now
    try:
        await session.flush()
    except StaleDataError as exc:
        raise ConcurrentTransition() from exc
    await _record(context, to_state=step.target, transition=step.name)
    for hook in (*step.on_enter, *workflow.hooks):
        await hook(context)
    return instance


async def _record(context: TransitionContext, *, to_state: str, transition: str) -> None:
    instance = context.instance
    context.session.add(
        WorkflowHistory(
            instance_id=instance.id,
            from_state=context.from_state,
            to_state=to_state,
            transition=transition,
            actor=context.actor[:120],
            actor_user_id=context.principal.user_id if context.principal else None,
            at=context.now,
            note=context.note,
        )
    )
    await publish(
        context.session,
        WorkflowTransitioned(
            organisation_id=instance.organisation_id,
            workflow=instance.workflow,
            instance_id=instance.id,
            subject_type=instance.subject_type,
            subject_id=instance.subject_id,
            transition=transition,
            from_state=context.from_state,
            to_state=to_state,
            actor=context.actor,
            deadline_at=instance.deadline_at,
        ),
    )


async def find_instance(
    session: AsyncSession,
    *,
    workflow: Workflow,
    subject_type: str,
    subject_id: str,
    organisation_id: str,
) -> WorkflowInstance | None:
    """Return the organisation's instance of a subject in a workflow, if any."""
    found: WorkflowInstance | None = await session.scalar(
        select(WorkflowInstance).where(
            WorkflowInstance.workflow == workflow.name,
            WorkflowInstance.subject_type == subject_type,
            WorkflowInstance.subject_id == subject_id,
            WorkflowInstance.organisation_id == organisation_id,
        )
    )
    return found


async def history(session: AsyncSession, *, instance: WorkflowInstance) -> list[WorkflowHistory]:
    """Return an instance's steps, oldest first."""
    rows = await session.scalars(
        select(WorkflowHistory)
        .where(WorkflowHistory.instance_id == instance.id)
        .order_by(WorkflowHistory.id)
    )
    return list(rows.all())


def allowed_transitions(instance: WorkflowInstance, principal: Principal) -> list[Transition]:
    """Return the transitions principal may take from the instance's state (guards aside)."""
    workflow = get_workflow(instance.workflow)
    return [t for t in workflow.leaving(instance.state) if workflow.may_take(t, principal)]


async def check_deadlines(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """Mark instances past their deadline, once each, with history and an event."""
    stmt = (
        select(WorkflowInstance)
        .where(
            WorkflowInstance.deadline_at <= now,
            WorkflowInstance.deadline_missed_at.is_(None),
        )
        .order_by(WorkflowInstance.deadline_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Checkers in other processes skip what this one holds instead of reporting it twice.
        stmt = stmt.with_for_update(skip_locked=True)
    missed = 0
    for instance in (await session.scalars(stmt)).all():
        deadline = instance.deadline_at
        assert deadline is not None  # noqa: S101 - selected for it
        instance.deadline_missed_at = now
        session.add(
            WorkflowHistory(
                instance_id=instance.id,
                from_state=instance.state,
                to_state=instance.state,
                transition=DEADLINE_MISSED,
                actor=SYSTEM,
                at=now,
            )
        )
        await publish(
            session,
            WorkflowDeadlineMissed(
                organisation_id=instance.organisation_id,
                workflow=instance.workflow,
                instance_id=instance.id,
                subject_type=instance.subject_type,
                subject_id=instance.subject_id,
                state=instance.state,
                deadline_at=deadline,
            ),
        )
        missed += 1
    if missed:
        await session.flush()
        log.info("deadlines_missed", count=missed)
    return missed
