"""Who has not reported for a period, who owes it, and when they were last reminded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.calendar import Period
from domain.slots import Slot
from store.models import Person, ReminderLedger


@dataclass(frozen=True)
class MissingRow:
    slot: Slot
    people: list[str]
    last_reminded: datetime | None


async def missing_rows(
    session: AsyncSession, period: Period, slots: list[Slot]
) -> list[MissingRow]:
    open_slots = [s for s in slots if not s.filled]
    ids = {pid for s in open_slots for pid in s.people}
    names: dict[int, str] = {}
    reminded: dict[int, datetime] = {}
    if ids:
        people = await session.execute(
            select(Person.id, Person.full_name).where(Person.id.in_(ids))
        )
        names = {pid: name for pid, name in people.all()}
        ledger = await session.execute(
            select(ReminderLedger.person_id, func.max(ReminderLedger.sent_at))
            .where(
                ReminderLedger.person_id.in_(ids),
                ReminderLedger.period == str(period),
                ReminderLedger.status == "sent",
            )
            .group_by(ReminderLedger.person_id)
        )
        reminded = {pid: at for pid, at in ledger.all() if at is not None}
    out = []
    for slot in open_slots:
        times = [reminded[p] for p in slot.people if p in reminded]
        out.append(
            MissingRow(
                slot, [names.get(p, "?") for p in slot.people], max(times) if times else None
            )
        )
    return out
