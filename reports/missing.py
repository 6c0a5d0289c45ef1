"""Who has not reported for a period, who owes it, and when they were last reminded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from domain.calendar import Period
from domain.slots import Slot
from store.progress import person_names
from store.summaries import last_reminded


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
    names = await person_names(session, ids)
    reminded = await last_reminded(session, ids, str(period))
    out = []
    for slot in open_slots:
        times = [reminded[p] for p in slot.people if p in reminded]
        out.append(
            MissingRow(
                slot, [names.get(p, "?") for p in slot.people], max(times) if times else None
            )
        )
    return out
