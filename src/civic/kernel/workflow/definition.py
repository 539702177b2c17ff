"""Declarative workflows: states, transitions with roles, guards, deadlines and hooks."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from civic.kernel.identity import Principal, Role
from civic.kernel.web.problems import Problem

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from civic.kernel.workflow.models import WorkflowInstance

_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,79}$")
_STEP = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
CREATED = "created"
DEADLINE_MISSED = "deadline_missed"
WORKFLOWS: dict[str, Workflow] = {}


@dataclass(frozen=True, kw_only=True)
class TransitionContext:
    """What guards, deadline rules and hooks see of a transition being taken."""

    session: AsyncSession
    workflow: Workflow
    instance: WorkflowInstance
    transition: Transition | None  # None when the instance is being created
    principal: Principal | None  # None: the system (a job, a deadline check)
    actor: str
    from_state: str | None
    note: str | None
    data: Mapping[str, Any]
    now: datetime


Guard = Callable[[TransitionContext], Awaitable[str | None] | str | None]
Hook = Callable[[TransitionContext], Awaitable[None]]
DeadlineRule = timedelta | Callable[[TransitionContext], datetime | None] | None


@dataclass(frozen=True)
class State:
    """A state; a final state has no way out and no deadline."""

    name: str
    title: str = ""
    final: bool = False


@dataclass(frozen=True, kw_only=True)
class Transition:
    """A named step from one of sources to target, for the given roles (admins always)."""

    name: str
    source: str | Sequence[str]
    target: str
    roles: Iterable[Role] = ()
    guard: Guard | None = None
    deadline: DeadlineRule = None
    on_enter: Sequence[Hook] = ()
    citizen_link: bool = False
    title: str = ""
    sources: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        """Normalise sources and roles; refuse reserved and malformed names."""
        sources = (self.source,) if isinstance(self.source, str) else tuple(self.source)
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "on_enter", tuple(self.on_enter))
        if not _STEP.match(self.name) or self.name in (CREATED, DEADLINE_MISSED):
            raise ValueError(f"transition name {self.name!r} is malformed or reserved")
        if not sources:
            raise ValueError(f"transition {self.name!r} has no source state")


class Workflow:
    """A state machine defined in code by a service; instances are stored per subject."""

    def __init__(
        self,
        name: str,
        *,
        service: str,
        states: Sequence[str | State],
        transitions: Sequence[Transition],
        initial: str | None = None,
        start_deadline: DeadlineRule = None,
        hooks: Sequence[Hook] = (),
        title: str = "",
    ) -> None:
        """Check the definition and register it under name."""
        self.name = name
        self.service = service
        self.title = title or name
        self.states = {s.name: s for s in (State(s) if isinstance(s, str) else s for s in states)}
        self.transitions = {t.name: t for t in transitions}
        self.initial = initial or next(iter(self.states), "")
        self.start_deadline = start_deadline
        self.hooks: list[Hook] = list(hooks)
        self._check(transitions)
        registered = WORKFLOWS.get(name)
        if registered is not None and registered.service != service:
            raise ValueError(f"two workflows are named {name!r}")
        WORKFLOWS[name] = self

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, states={list(self.states)})"

    def _check(self, transitions: Sequence[Transition]) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"workflow name {self.name!r} must match {_NAME.pattern}")
        if len(self.transitions) != len(transitions):
            raise ValueError(f"workflow {self.name!r} names two transitions alike")
        for state in self.states:
            if not _STEP.match(state):
                raise ValueError(f"state name {state!r} must match {_STEP.pattern}")
        if self.initial not in self.states:
            raise ValueError(f"initial state {self.initial!r} is not a state of {self.name!r}")
        for transition in self.transitions.values():
            for state in (*transition.sources, transition.target):
                if state not in self.states:
                    raise ValueError(f"{self.name}.{transition.name}: unknown state {state!r}")
            if final := [s for s in transition.sources if self.states[s].final]:
                raise ValueError(f"{self.name}.{transition.name} leaves final state {final[0]!r}")

    def add_hook(self, hook: Hook) -> None:
        """Also call hook after every transition (notifications plug in here)."""
        self.hooks.append(hook)

    def transition(self, name: str) -> Transition:
        """Return the transition called name."""
        try:
            return self.transitions[name]
        except KeyError:
            raise UnknownTransition(self, name) from None

    def leaving(self, state: str) -> list[Transition]:
        """Return the transitions that leave state."""
        return [t for t in self.transitions.values() if state in t.sources]

    def may_take(self, transition: Transition, principal: Principal) -> bool:
        """Whether principal holds a role that may take transition (ignoring guards)."""
        if principal.via == "link":
            return transition.citizen_link
        return principal.has_role(self.service, *transition.roles)


def get_workflow(name: str) -> Workflow:
    """Return the registered workflow called name."""
    try:
        return WORKFLOWS[name]
    except KeyError:
        raise LookupError(f"no workflow is registered as {name!r}") from None


class WorkflowProblem(Problem):
    """A transition that was refused; a problem document with a machine-readable code."""

    def __init__(self, status: int, detail: str, *, code: str, **extensions: Any) -> None:
        """Describe the refusal."""
        super().__init__(status, detail, code=code, **extensions)
        self.code = code


class UnknownTransition(WorkflowProblem):
    """The workflow has no transition of that name."""

    def __init__(self, workflow: Workflow, name: str) -> None:
        """Name the workflow and the missing transition."""
        super().__init__(
            422,
            f"'{workflow.name}'에는 '{name}' 단계가 없습니다 (unknown transition).",
            code="unknown_transition",
            known=sorted(workflow.transitions),
        )


class IllegalTransition(WorkflowProblem):
    """The transition exists, but not from the current state."""

    def __init__(self, workflow: Workflow, state: str, transition: Transition) -> None:
        """Say which transitions the current state allows."""
        allowed = [t.name for t in workflow.leaving(state)]
        super().__init__(
            409,
            f"'{state}' 상태에서는 '{transition.name}'을(를) 할 수 없습니다 "
            f"(allowed: {', '.join(allowed) or 'none'}).",
            code="illegal_transition",
            state=state,
            allowed=allowed,
        )


class TransitionForbidden(WorkflowProblem):
    """The principal lacks every role that may take the transition."""

    def __init__(self, workflow: Workflow, transition: Transition) -> None:
        """Name the roles that may."""
        roles = sorted(r.value for r in transition.roles) or [Role.ADMIN.value]
        super().__init__(
            403,
            f"'{transition.name}'은(는) '{workflow.service}'의 다음 역할만 할 수 있습니다: "
            f"{', '.join(roles)}.",
            code="forbidden",
            roles=roles,
        )


class GuardFailed(WorkflowProblem):
    """A guard refused the transition; its reason is the detail."""

    def __init__(self, transition: Transition, reason: str) -> None:
        """Carry the guard's reason."""
        super().__init__(409, reason, code="guard_failed", transition=transition.name)


class ConcurrentTransition(WorkflowProblem):
    """Someone else moved the instance first."""

    def __init__(self) -> None:
        """Ask to reload and retry."""
        super().__init__(
            409,
            "다른 사람이 먼저 처리했습니다. 새로 고친 뒤 다시 시도해 주세요 (changed meanwhile).",
            code="concurrent",
        )
