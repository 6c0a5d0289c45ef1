"""When reminders are due: days before the deadline at a fixed hour, never at night."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from domain.calendar import Calendar, Period

_CLOCK = re.compile(r"^\s*(\d{1,2})[:h](\d{2})\s*$")


def parse_clock(text: str) -> time:
    """`08:00` or `8h00` → 08:00; ValueError otherwise."""
    m = _CLOCK.match(text)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"expected a time of day like 08:00: {text!r}")
    return time(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class Policy:
    remind_days: tuple[int, ...] = (5, 2, 1)
    office_remind_days: tuple[int, ...] = (2, 1)
    remind_at: time = time(8, 0)
    quiet_start: time | None = time(21, 0)
    quiet_end: time | None = time(7, 0)

    def quiet(self, local: datetime) -> bool:
        """Within quiet hours (which may wrap past midnight)."""
        if self.quiet_start is None or self.quiet_end is None:
            return False
        now = local.timetz().replace(tzinfo=None)
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= now < self.quiet_end
        return now >= self.quiet_start or now < self.quiet_end

    def release(self, local: datetime) -> datetime:
        """The moment a reminder scheduled at `local` may go out: itself, or the end of the
        quiet hours it falls in."""
        if not self.quiet(local) or self.quiet_end is None:
            return local
        end = local.replace(
            hour=self.quiet_end.hour, minute=self.quiet_end.minute, second=0, microsecond=0
        )
        return end if end > local else end + timedelta(days=1)


@dataclass(frozen=True)
class Due:
    """A reminder whose moment has come."""

    kind: str  # due-5 | overdue | office-2
    audience: str  # reporters | escalation | office
    period: Period
    at: datetime


def _at(calendar: Calendar, policy: Policy, day: datetime, days_before: int) -> datetime:
    local = (day - timedelta(days=days_before)).astimezone(calendar.zone)
    moment = datetime.combine(local.date(), policy.remind_at, tzinfo=calendar.zone)
    return policy.release(moment)


def due(calendar: Calendar, policy: Policy, now: datetime) -> list[Due]:
    """The reminders due at `now`. Of several reminders to the same audience that are due
    (the bot was down at 08:00 for two days), only the latest goes out."""
    if policy.quiet(now.astimezone(calendar.zone)):
        return []
    out: list[Due] = []
    current = calendar.period_at(now)
    deadline = calendar.deadline(current)
    reporters = [
        Due(f"due-{d}", "reporters", current, _at(calendar, policy, deadline, d))
        for d in policy.remind_days
    ]
    ready = [r for r in reporters if r.at <= now < deadline]
    if ready:
        out.append(max(ready, key=lambda r: r.at))
    previous = current.previous()
    office_deadline = calendar.office_deadline(previous)
    if now < office_deadline:
        escalation = Due(
            "overdue", "escalation", previous, _at(calendar, policy, calendar.deadline(previous), 0)
        )
        if escalation.at <= now:
            out.append(escalation)
        office = [
            Due(f"office-{d}", "office", previous, _at(calendar, policy, office_deadline, d))
            for d in policy.office_remind_days
        ]
        ready = [o for o in office if o.at <= now]
        if ready:
            out.append(max(ready, key=lambda o: o.at))
    return out
