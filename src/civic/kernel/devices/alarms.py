"""Alarm rules evaluated on every stored batch, and the alarms they raise and clear.

Rule kinds: a threshold on a metric (`metric operator threshold`), raised at once, after it
held for `for_seconds`, or after `times_in_row` consecutive samples; and silence (no telemetry
for `silent_seconds`), checked periodically. The streak of each (rule, device) is kept in
memory: after a restart a streak starts again, while raised alarms (rows) carry over.
"""

from __future__ import annotations

import operator
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.bus import publish
from civic.kernel.db import new_id, utcnow
from civic.kernel.devices.events import (
    AlarmAcknowledged,
    AlarmCleared,
    AlarmEscalated,
    AlarmRaised,
)
from civic.kernel.devices.ingest import Sample
from civic.kernel.devices.models import Alarm, AlarmRule, AlarmStatus, Device, DeviceStatus
from civic.kernel.devices.registry import DeviceError

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_RULES_TTL = 10.0


@dataclass
class _Streak:
    count: int = 0
    since: datetime | None = None


@dataclass(frozen=True)
class _Active:
    alarm_id: str
    severity: str
    organisation_id: str


class RuleEngine:
    """Evaluates rules against samples and keeps which alarms are active."""

    def __init__(self) -> None:
        """Start with nothing loaded; `load` reads rules and active alarms."""
        self._rules: dict[str, list[AlarmRule]] = defaultdict(list)
        self._loaded_at = float("-inf")
        self._streaks: dict[tuple[str, str], _Streak] = {}
        self.active: dict[tuple[str, str], _Active] = {}
        self.raised_clocks: list[float] = []

    def invalidate(self) -> None:
        """Reload rules before the next evaluation (they changed)."""
        self._loaded_at = float("-inf")

    async def load(self, session: AsyncSession, *, alarms: bool = False) -> None:
        """Read enabled rules (and, at start, the active alarms)."""
        rules = (await session.scalars(select(AlarmRule).where(AlarmRule.enabled.is_(True)))).all()
        by_org: dict[str, list[AlarmRule]] = defaultdict(list)
        for rule in rules:
            session.expunge(rule)
            by_org[rule.organisation_id].append(rule)
        self._rules = by_org
        self._loaded_at = time.monotonic()
        if alarms:
            rows = await session.execute(
                select(
                    Alarm.id, Alarm.rule_id, Alarm.device_id, Alarm.severity, Alarm.organisation_id
                ).where(Alarm.status == AlarmStatus.ACTIVE.value)
            )
            self.active = {(r[1], r[2]): _Active(r[0], r[3], r[4]) for r in rows}

    def silence_rules(self) -> list[AlarmRule]:
        """Return the enabled silence rules."""
        return [r for rules in self._rules.values() for r in rules if r.silent_seconds]

    async def evaluate(self, session: AsyncSession, samples: list[Sample]) -> None:
        """Raise and clear alarms for a batch of samples, in the batch's transaction."""
        if time.monotonic() - self._loaded_at > _RULES_TTL:
            await self.load(session)
        for sample in samples:
            device = sample.device
            for rule in self._rules.get(device.organisation_id, ()):
                if rule.device_id not in (None, device.id) or rule.kind not in (None, device.kind):
                    continue
                key = (rule.id, device.id)
                if rule.silent_seconds:
                    if key in self.active:
                        await self.clear(session, key, device.id)
                    continue
                value = sample.metrics.get(rule.metric or "")
                if value is None or rule.operator is None or rule.threshold is None:
                    continue
                if OPERATORS[rule.operator](value, rule.threshold):
                    streak = self._streaks.setdefault(key, _Streak())
                    streak.count += 1
                    streak.since = streak.since or sample.sampled_at
                    held = (sample.sampled_at - streak.since).total_seconds()
                    if (
                        key not in self.active
                        and streak.count >= rule.times_in_row
                        and held >= rule.for_seconds
                    ):
                        await self.raise_alarm(session, rule, device.id, device.kind, value)
                        self.raised_clocks.append(sample.received_clock)
                else:
                    self._streaks.pop(key, None)
                    if key in self.active:
                        await self.clear(session, key, device.id)

    async def raise_alarm(
        self, session: AsyncSession, rule: AlarmRule, device_id: str, kind: str, value: float
    ) -> str:
        """Insert an active alarm and publish devices.alarm_raised."""
        if rule.silent_seconds:
            message = f"{rule.name}: {value:.0f}초 동안 데이터 없음"
        else:
            message = f"{rule.name}: {rule.metric} {value:g} {rule.operator} {rule.threshold:g}"
        alarm = Alarm(
            id=new_id(),
            organisation_id=rule.organisation_id,
            device_id=device_id,
            rule_id=rule.id,
            severity=rule.severity,
            status=AlarmStatus.ACTIVE.value,
            message=message,
            value=value,
            escalation_level=0,
        )
        session.add(alarm)
        self.active[(rule.id, device_id)] = _Active(alarm.id, rule.severity, rule.organisation_id)
        await publish(
            session,
            AlarmRaised(
                organisation_id=rule.organisation_id,
                device_id=device_id,
                alarm_id=alarm.id,
                rule_id=rule.id,
                severity=rule.severity,
                kind=kind,
                metric=rule.metric,
                value=value,
                message=message,
            ),
        )
        return alarm.id

    async def clear(self, session: AsyncSession, key: tuple[str, str], device_id: str) -> None:
        """Clear an active alarm and publish devices.alarm_cleared."""
        active = self.active.pop(key)
        await session.execute(
            update(Alarm)
            .where(Alarm.id == active.alarm_id)
            .values(status=AlarmStatus.CLEARED.value, cleared_at=utcnow())
        )
        await publish(
            session,
            AlarmCleared(
                organisation_id=active.organisation_id,
                device_id=device_id,
                alarm_id=active.alarm_id,
                rule_id=key[0],
                severity=active.severity,
            ),
        )

    async def check_silence(
        self, session: AsyncSession, *, now: datetime, last_seen: dict[str, datetime]
    ) -> int:
        """Raise silence alarms for devices quiet too long; return how many were raised."""
        if time.monotonic() - self._loaded_at > _RULES_TTL:
            await self.load(session)
        raised = 0
        for rule in self.silence_rules():
            assert rule.silent_seconds is not None  # noqa: S101 - filtered above
            cutoff = now - timedelta(seconds=rule.silent_seconds)
            stmt = select(Device.id, Device.kind, Device.last_seen_at, Device.created_at).where(
                Device.organisation_id == rule.organisation_id,
                Device.status == DeviceStatus.ACTIVE.value,
                func.coalesce(Device.last_seen_at, Device.created_at) < cutoff,
            )
            if rule.device_id is not None:
                stmt = stmt.where(Device.id == rule.device_id)
            if rule.kind is not None:
                stmt = stmt.where(Device.kind == rule.kind)
            for device_id, kind, seen, created in await session.execute(stmt):
                latest = max(filter(None, (seen, created, last_seen.get(device_id))))
                if latest >= cutoff or (rule.id, device_id) in self.active:
                    continue
                silent = (now - latest).total_seconds()
                await self.raise_alarm(session, rule, device_id, kind, silent)
                raised += 1
        return raised


async def acknowledge_alarm(
    session: AsyncSession, *, alarm: Alarm, user_id: str | None, now: datetime
) -> bool:
    """Acknowledge an alarm (once); return False if it was acknowledged before."""
    if alarm.acknowledged_at is not None:
        return False
    alarm.acknowledged_at = now
    alarm.acknowledged_by = user_id
    await publish(
        session,
        AlarmAcknowledged(
            organisation_id=alarm.organisation_id,
            device_id=alarm.device_id,
            alarm_id=alarm.id,
            rule_id=alarm.rule_id,
            severity=alarm.severity,
            user_id=user_id,
        ),
    )
    return True


async def escalate_overdue(
    session: AsyncSession, *, now: datetime, after: timedelta, max_level: int = 3
) -> int:
    """Escalate active, unacknowledged alarms once per `after` period; return how many."""
    rows = await session.scalars(
        select(Alarm)
        .where(
            Alarm.status == AlarmStatus.ACTIVE.value,
            Alarm.acknowledged_at.is_(None),
            Alarm.escalation_level < max_level,
            func.coalesce(Alarm.escalated_at, Alarm.raised_at) <= now - after,
        )
        .limit(500)
    )
    count = 0
    for alarm in rows:
        alarm.escalation_level += 1
        alarm.escalated_at = now
        await publish(
            session,
            AlarmEscalated(
                organisation_id=alarm.organisation_id,
                device_id=alarm.device_id,
                alarm_id=alarm.id,
                rule_id=alarm.rule_id,
                severity=alarm.severity,
                level=alarm.escalation_level,
            ),
        )
        count += 1
    return count


async def create_rule(
    session: AsyncSession,
    *,
    organisation_id: str,
    name: str,
    metric: str | None = None,
    operator_: str | None = None,
    threshold: float | None = None,
    for_seconds: float = 0,
    times_in_row: int = 1,
    silent_seconds: float | None = None,
    kind: str | None = None,
    device_id: str | None = None,
    severity: str = "warning",
) -> AlarmRule:
    """Create an alarm rule: a threshold (metric, operator_, threshold) or silence."""
    if silent_seconds is None:
        if metric is None or operator_ not in OPERATORS or threshold is None:
            raise DeviceError(
                "임계값 규칙에는 metric, operator(>, >=, <, <=, ==, !=), threshold가 필요합니다."
            )
    elif metric is not None or silent_seconds <= 0:
        raise DeviceError("무응답 규칙에는 양수 silent_seconds만 주고 metric은 주지 않습니다.")
    if times_in_row < 1 or for_seconds < 0:
        raise DeviceError("times_in_row는 1 이상, for_seconds는 0 이상이어야 합니다.")
    rule = AlarmRule(
        organisation_id=organisation_id,
        name=name,
        kind=kind,
        device_id=device_id,
        metric=metric,
        operator=operator_,
        threshold=threshold,
        for_seconds=for_seconds,
        times_in_row=times_in_row,
        silent_seconds=silent_seconds,
        severity=severity,
        enabled=True,
    )
    session.add(rule)
    await session.flush()
    return rule
