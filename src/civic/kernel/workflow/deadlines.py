"""The kernel part that reports missed workflow deadlines, every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from civic.kernel.db import transaction, utcnow
from civic.kernel.runtime import Kernel
from civic.kernel.settings import WorkflowSettings
from civic.kernel.workflow.engine import check_deadlines

log = structlog.get_logger("civic.workflow")


class WorkflowDeadlines:
    """Kernel part: publishes `workflow.deadline_missed` once per missed deadline."""

    name = "workflow"

    def __init__(
        self, settings: WorkflowSettings, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        """Check every settings.deadline_check_seconds, reading the time from clock."""
        self.settings = settings
        self.clock = clock
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, kernel: Kernel) -> None:
        """Start checking."""
        self._sessions = kernel.sessions
        self._task = asyncio.create_task(self._run(), name="civic-workflow-deadlines")

    async def stop(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check_now(self) -> int:
        """Report every deadline passed by now (the clock's); return how many."""
        if self._sessions is None:
            raise LookupError("the workflow part has not started")
        total = 0
        while True:
            async with transaction(self._sessions) as session:
                missed = await check_deadlines(session, now=self.clock())
            total += missed
            if missed < 500:
                return total

    async def _run(self) -> None:
        while True:
            try:
                await self.check_now()
            except Exception:
                log.exception("deadline_check_failed")
            await asyncio.sleep(self.settings.deadline_check_seconds)


def workflow_deadlines_of(kernel: Kernel) -> WorkflowDeadlines:
    """Return the running deadline checker."""
    return kernel.part("workflow", WorkflowDeadlines)
