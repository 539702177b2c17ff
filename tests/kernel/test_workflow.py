"""Workflows, driven by an inspection request: requested → scheduled → inspected → closed."""

from datetime import datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel import audit
from civic.kernel.bus import OutboxEvent
from civic.kernel.db import transaction, utcnow
from civic.kernel.identity import CitizenLinkScope, Principal, Role
from civic.kernel.workflow import (
    CREATED,
    DEADLINE_MISSED,
    ConcurrentTransition,
    GuardFailed,
    IllegalTransition,
    State,
    Transition,
    TransitionContext,
    TransitionForbidden,
    UnknownTransition,
    Workflow,
    WorkflowInstance,
    WorkflowProblem,
    allowed_transitions,
    apply,
    check_deadlines,
    history,
    start,
    workflow_deadlines_of,
)
from tests.factories import make_organisation

notified: list[tuple[str, str]] = []


def visit_is_ahead(context: TransitionContext) -> str | None:
    visit = context.data.get("visit_on")
    if not isinstance(visit, datetime):
        return "방문 일시(visit_on)를 정해 주세요."
    if visit <= context.now:
        return "방문 일시는 앞으로의 시각이어야 합니다."
    return None


async def reason_given(context: TransitionContext) -> str | None:
    return None if context.note else "반려 사유를 적어 주세요."


def day_after_visit(context: TransitionContext) -> datetime:
    return context.data["visit_on"] + timedelta(days=1)


async def notify(context: TransitionContext) -> None:
    notified.append((context.instance.subject_id, context.instance.state))


async def note_inspection(context: TransitionContext) -> None:
    # Hooks share the transition's transaction: this entry stands or falls with it.
    await audit.record(
        context.session,
        principal=context.principal,
        action=audit.AuditAction.UPDATE,
        subject_type="inspection_request",
        subject_id=context.instance.subject_id,
        detail={"inspected_by": context.actor},
    )
    if context.data.get("explode"):
        raise RuntimeError("the report archive is down")


INSPECTION = Workflow(
    "test.inspection_request",
    service="safety",
    title="안전점검 신청",
    states=[
        "requested",
        "scheduled",
        "inspected",
        State("closed", final=True),
        State("rejected", final=True),
    ],
    start_deadline=timedelta(days=3),
    transitions=[
        Transition(
            name="schedule",
            source="requested",
            target="scheduled",
            roles=[Role.CLERK],
            guard=visit_is_ahead,
            deadline=day_after_visit,
        ),
        Transition(
            name="inspect",
            source="scheduled",
            target="inspected",
            roles=[Role.INSPECTOR],
            deadline=timedelta(days=7),
            on_enter=[note_inspection],
        ),
        Transition(name="close", source="inspected", target="closed", roles=[Role.CLERK]),
        Transition(
            name="reject",
            source=("requested", "scheduled"),
            target="rejected",
            roles=[Role.CLERK],
            guard=reason_given,
        ),
        Transition(name="withdraw", source="requested", target="rejected", citizen_link=True),
    ],
    hooks=[notify],
)


def person(org: str, *roles: Role, name: str = "kim") -> Principal:
    return Principal(
        user_id=None,
        name=name,
        organisation_id=org,
        grants=frozenset(("safety", r.value) for r in roles),
    )


@pytest.fixture
async def org(app: FastAPI) -> str:
    return (await make_organisation(app, name="성동구청")).id


async def begin(app: FastAPI, org: str, subject: str, *, now: datetime | None = None):
    async with transaction(app.state.kernel.sessions) as session:
        return await start(
            session,
            workflow=INSPECTION,
            subject_type="inspection_request",
            subject_id=subject,
            organisation_id=org,
            principal=person(org, Role.CITIZEN, name="resident"),
            now=now,
        )


async def step(app: FastAPI, instance: WorkflowInstance, name: str, principal, **kw):
    async with transaction(app.state.kernel.sessions) as session:
        loaded = await session.get(WorkflowInstance, instance.id)
        return await apply(session, instance=loaded, transition=name, principal=principal, **kw)


async def events_of(session: AsyncSession, instance_id: str) -> list[dict]:
    rows = await session.scalars(
        select(OutboxEvent).where(OutboxEvent.key == instance_id).order_by(OutboxEvent.id)
    )
    return [row.payload | {"name": row.name} for row in rows]


def test_definitions_are_checked() -> None:
    bad = [
        {"states": ["a"], "transitions": [Transition(name="go", source="a", target="b")]},
        {
            "states": ["a", State("done", final=True)],
            "transitions": [Transition(name="back", source="done", target="a")],
        },
        {
            "states": ["a", "b"],
            "transitions": [
                Transition(name="go", source="a", target="b"),
                Transition(name="go", source="b", target="a"),
            ],
        },
        {"states": ["a"], "transitions": [], "initial": "z"},
        {"states": ["Not A State"], "transitions": []},
    ]
    for definition in bad:
        with pytest.raises(ValueError):
            Workflow("test.broken", service="x", **definition)
    with pytest.raises(ValueError, match="reserved"):
        Transition(name=CREATED, source="a", target="b")
    with pytest.raises(ValueError, match="two workflows"):
        Workflow("test.inspection_request", service="another", states=["a"], transitions=[])


async def test_a_request_goes_through_with_history_deadlines_hooks_and_events(
    app: FastAPI, org: str
) -> None:
    notified.clear()
    t0 = utcnow()
    clerk, inspector = person(org, Role.CLERK, name="clerk-lee"), person(org, Role.INSPECTOR)
    instance = await begin(app, org, "IR-1", now=t0)
    assert instance.state == "requested" and instance.deadline_at == t0 + timedelta(days=3)

    visit = t0 + timedelta(days=2)
    scheduled = await step(
        app, instance, "schedule", clerk, note="화요일 오전", data={"visit_on": visit}, now=t0
    )
    assert scheduled.state == "scheduled" and scheduled.deadline_at == visit + timedelta(days=1)
    inspected = await step(app, instance, "inspect", inspector, now=visit)
    assert inspected.deadline_at == visit + timedelta(days=7)
    closed = await step(app, instance, "close", clerk, now=visit + timedelta(days=1))
    assert closed.state == "closed" and closed.deadline_at is None

    async with app.state.kernel.sessions() as session:
        steps = await history(session, instance=instance)
        published = await events_of(session, instance.id)
        inspected_note = await session.scalar(
            select(audit.AuditEntry).where(audit.AuditEntry.subject_id == "IR-1")
        )
    assert [(h.from_state, h.to_state, h.transition, h.actor) for h in steps] == [
        (None, "requested", CREATED, "resident"),
        ("requested", "scheduled", "schedule", "clerk-lee"),
        ("scheduled", "inspected", "inspect", "kim"),
        ("inspected", "closed", "close", "clerk-lee"),
    ]
    assert steps[1].note == "화요일 오전" and steps[2].at == visit
    assert [(e["name"], e["transition"], e["to_state"]) for e in published] == [
        ("workflow.transitioned", CREATED, "requested"),
        ("workflow.transitioned", "schedule", "scheduled"),
        ("workflow.transitioned", "inspect", "inspected"),
        ("workflow.transitioned", "close", "closed"),
    ]
    assert published[0]["organisation_id"] == org
    assert notified == [
        ("IR-1", "requested"),
        ("IR-1", "scheduled"),
        ("IR-1", "inspected"),
        ("IR-1", "closed"),
    ]
    assert inspected_note is not None and inspected_note.detail == {"inspected_by": "kim"}


async def test_illegal_and_unknown_transitions_are_refused(app: FastAPI, org: str) -> None:
    instance = await begin(app, org, "IR-2")
    clerk = person(org, Role.CLERK)
    with pytest.raises(IllegalTransition) as illegal:
        await step(app, instance, "close", clerk)
    assert illegal.value.status == 409 and illegal.value.code == "illegal_transition"
    assert illegal.value.extensions["allowed"] == ["schedule", "reject", "withdraw"]
    with pytest.raises(UnknownTransition) as unknown:
        await step(app, instance, "teleport", clerk)
    assert unknown.value.status == 422 and "schedule" in unknown.value.extensions["known"]
    with pytest.raises(WorkflowProblem, match="이미") as twice:
        await begin(app, org, "IR-2")
    assert twice.value.status == 409


async def test_only_the_right_roles_may_act(app: FastAPI, org: str) -> None:
    instance = await begin(app, org, "IR-3")
    visit = {"visit_on": utcnow() + timedelta(days=1)}
    inspector = person(org, Role.INSPECTOR)
    with pytest.raises(TransitionForbidden) as refused:
        await step(app, instance, "schedule", inspector, data=visit)
    assert refused.value.status == 403 and refused.value.extensions["roles"] == ["clerk"]
    elsewhere = person("another-organisation", Role.CLERK)
    with pytest.raises(WorkflowProblem) as absent:
        await step(app, instance, "schedule", elsewhere, data=visit)
    assert absent.value.status == 404
    clerk_elsewhere_in_service = Principal(
        user_id=None, name="c", organisation_id=org, grants=frozenset({("parking", "clerk")})
    )
    with pytest.raises(TransitionForbidden):
        await step(app, instance, "schedule", clerk_elsewhere_in_service, data=visit)
    admin = Principal(
        user_id=None, name="root", organisation_id=org, grants=frozenset({("*", "admin")})
    )
    assert [t.name for t in allowed_transitions(instance, inspector)] == []
    assert [t.name for t in allowed_transitions(instance, admin)] == [
        "schedule",
        "reject",
        "withdraw",
    ]
    assert (await step(app, instance, "schedule", admin, data=visit)).state == "scheduled"


async def test_a_citizen_link_may_withdraw_its_own_request_only(app: FastAPI, org: str) -> None:
    mine, other = await begin(app, org, "IR-4"), await begin(app, org, "IR-5")

    def link_for(subject: str) -> Principal:
        scope = CitizenLinkScope(
            link_id="l1", purpose="status", subject_type="inspection_request", subject_id=subject
        )
        return Principal(
            user_id=None, name="citizen-link:l1", organisation_id=org, via="link", link=scope
        )

    with pytest.raises(TransitionForbidden):
        await step(app, other, "withdraw", link_for("IR-4"))
    with pytest.raises(TransitionForbidden):
        await step(app, mine, "reject", link_for("IR-4"), note="spam")
    assert (await step(app, mine, "withdraw", link_for("IR-4"))).state == "rejected"


async def test_guards_refuse_with_their_reason(app: FastAPI, org: str) -> None:
    instance = await begin(app, org, "IR-6")
    clerk = person(org, Role.CLERK)
    with pytest.raises(GuardFailed, match="visit_on") as unset:
        await step(app, instance, "schedule", clerk)
    assert unset.value.status == 409 and unset.value.code == "guard_failed"
    with pytest.raises(GuardFailed, match="앞으로"):
        await step(
            app, instance, "schedule", clerk, data={"visit_on": utcnow() - timedelta(hours=1)}
        )
    with pytest.raises(GuardFailed, match="사유"):
        await step(app, instance, "reject", clerk)
    assert (await step(app, instance, "reject", clerk, note="관할 아님")).state == "rejected"


async def test_a_failing_hook_undoes_the_transition(app: FastAPI, org: str) -> None:
    instance = await begin(app, org, "IR-7")
    clerk, inspector = person(org, Role.CLERK), person(org, Role.INSPECTOR)
    await step(app, instance, "schedule", clerk, data={"visit_on": utcnow() + timedelta(days=1)})
    with pytest.raises(RuntimeError, match="archive"):
        await step(app, instance, "inspect", inspector, data={"explode": True})
    async with app.state.kernel.sessions() as session:
        reloaded = await session.get(WorkflowInstance, instance.id)
        steps = await history(session, instance=instance)
        published = await events_of(session, instance.id)
        notes = await session.scalar(
            select(audit.AuditEntry).where(audit.AuditEntry.subject_id == "IR-7")
        )
    assert reloaded.state == "scheduled"
    assert [h.transition for h in steps] == [CREATED, "schedule"]
    assert [e["transition"] for e in published] == [CREATED, "schedule"]
    assert notes is None


async def test_two_people_acting_at_once_cannot_both_win(app: FastAPI, org: str) -> None:
    instance = await begin(app, org, "IR-8")
    clerk = person(org, Role.CLERK)
    sessions = app.state.kernel.sessions
    async with sessions() as first, sessions() as second:
        mine = await first.get(WorkflowInstance, instance.id)
        theirs = await second.get(WorkflowInstance, instance.id)
        await apply(first, instance=mine, transition="reject", principal=clerk, note="중복")
        await first.commit()
        visit = {"visit_on": utcnow() + timedelta(days=1)}
        with pytest.raises(ConcurrentTransition):
            await apply(second, instance=theirs, transition="schedule", principal=clerk, data=visit)
        await second.rollback()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_missed_deadlines_are_reported_once_by_the_checker(app: FastAPI, org: str) -> None:
    t0 = utcnow() + timedelta(days=400)  # far from every other test's deadlines
    instance = await begin(app, org, "IR-9", now=t0)
    checker = workflow_deadlines_of(app.state.kernel)
    clock = Clock(t0 + timedelta(days=2))
    checker.clock = clock
    await checker.check_now()
    async with app.state.kernel.sessions() as session:
        assert (await session.get(WorkflowInstance, instance.id)).deadline_missed_at is None

    clock.now = t0 + timedelta(days=3, seconds=1)
    assert await checker.check_now() >= 1
    assert await checker.check_now() == 0  # reported once
    async with app.state.kernel.sessions() as session:
        reloaded = await session.get(WorkflowInstance, instance.id)
        steps = await history(session, instance=instance)
        published = await events_of(session, instance.id)
    assert reloaded.deadline_missed_at == clock.now
    assert (steps[-1].transition, steps[-1].from_state, steps[-1].to_state) == (
        DEADLINE_MISSED,
        "requested",
        "requested",
    )
    missed = published[-1]
    assert missed["name"] == "workflow.deadline_missed" and missed["state"] == "requested"
    assert datetime.fromisoformat(missed["deadline_at"]) == t0 + timedelta(days=3)

    # Acting on it sets the next deadline and clears the miss.
    visit = clock.now + timedelta(days=1)
    scheduled = await step(
        app, instance, "schedule", person(org, Role.CLERK), data={"visit_on": visit}, now=clock.now
    )
    assert scheduled.deadline_missed_at is None and scheduled.deadline_at == visit + timedelta(
        days=1
    )
    async with transaction(app.state.kernel.sessions) as session:
        assert await check_deadlines(session, now=visit) == 0
        assert await check_deadlines(session, now=visit + timedelta(days=2)) >= 1
