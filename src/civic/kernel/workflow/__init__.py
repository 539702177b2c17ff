"""Small declarative state machines with roles, guards, deadlines, history and hooks.

A service defines a `Workflow` in code (an inspection request, a form application, a bulky
waste pickup), starts one instance per subject with `start`, and moves it with `apply`, which
refuses illegal steps with problem details, records history, sets the next deadline, runs the
hooks in the same transaction and publishes `workflow.transitioned`. The `WorkflowDeadlines`
kernel part publishes `workflow.deadline_missed` when an instance overstays its deadline.
"""

from civic.kernel.workflow.deadlines import WorkflowDeadlines, workflow_deadlines_of
from civic.kernel.workflow.definition import (
    CREATED,
    DEADLINE_MISSED,
    WORKFLOWS,
    ConcurrentTransition,
    GuardFailed,
    IllegalTransition,
    State,
    Transition,
    TransitionContext,
    TransitionForbidden,
    UnknownTransition,
    Workflow,
    WorkflowProblem,
    get_workflow,
)
from civic.kernel.workflow.engine import (
    SYSTEM,
    WorkflowDeadlineMissed,
    WorkflowTransitioned,
    allowed_transitions,
    apply,
    check_deadlines,
    find_instance,
    history,
    start,
)
from civic.kernel.workflow.models import WorkflowHistory, WorkflowInstance

__all__ = [
    "CREATED",
    "DEADLINE_MISSED",
    "SYSTEM",
    "WORKFLOWS",
    "ConcurrentTransition",
    "GuardFailed",
    "IllegalTransition",
    "State",
    "Transition",
    "TransitionContext",
    "TransitionForbidden",
    "UnknownTransition",
    "Workflow",
    "WorkflowDeadlineMissed",
    "WorkflowDeadlines",
    "WorkflowHistory",
    "WorkflowInstance",
    "WorkflowProblem",
    "WorkflowTransitioned",
    "allowed_transitions",
    "apply",
    "check_deadlines",
    "find_instance",
    "get_workflow",
    "history",
    "start",
    "workflow_deadlines_of",
]
