"""The reminders' queries and their ledger: one row per (person, period, kind), written and
committed before the message goes, settled after."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from domain.subjects import Subject
from store.db import unit_of_work
from store.models import Cluster, Organisation, PaperReceipt, Person, ReminderLedger

SENDING = "sending"  # claimed, not yet settled: a crash leaves it so
UNREACHABLE = "unreachable"


async def active_people(session: AsyncSession) -> list[Person]:
    """Everyone with access, with their chats, clusters and organisation."""
    return list(
        (
            await session.scalars(
                select(Person)
                .where(Person.active.is_(True))
                .options(
                    selectinload(Person.identities),
                    selectinload(Person.clusters),
                    selectinload(Person.organisation),
                    selectinload(Person.district),
                )
                .order_by(Person.id)
            )
        ).all()
    )


async def claimed_papers(session: AsyncSession) -> list[PaperReceipt]:
    """Paper copies a reporter says they sent, waiting for an admin to confirm."""
    found = await session.scalars(select(PaperReceipt).where(PaperReceipt.status == "claimed"))
    return list(found.all())


async def sent_kinds(session: AsyncSession, periods: Iterable[str]) -> set[tuple[int, str, str]]:
    """(person, period, kind) of every reminder the ledger has for these periods."""
    rows = await session.execute(
        select(ReminderLedger.person_id, ReminderLedger.period, ReminderLedger.kind).where(
            ReminderLedger.period.in_(list(periods))
        )
    )
    return {(p, per, k) for p, per, k in rows.all()}


async def unreachable_people(session: AsyncSession, period: str) -> set[int]:
    """People a reminder of `period` could not reach."""
    found = await session.scalars(
        select(ReminderLedger.person_id).where(
            ReminderLedger.period == period, ReminderLedger.status == UNREACHABLE
        )
    )
    return set(found.all())


async def uncertain_count(session: AsyncSession) -> int:
    """Reminders claimed but never settled (the sender died while sending them)."""
    count = await session.scalar(
        select(func.count(ReminderLedger.id)).where(ReminderLedger.status == SENDING)
    )
    return int(count or 0)


async def subject_title(session: AsyncSession, subject: Subject) -> str:
    """The cluster's or organisation's name; the subject's text if it is gone."""
    if subject.code is not None:
        name = await session.scalar(select(Cluster.name).where(Cluster.code == subject.code))
    else:
        name = await session.scalar(
            select(Organisation.name).where(Organisation.id == subject.org_id)
        )
    return name or str(subject)


async def person_name(session: AsyncSession, person_id: int | None) -> str:
    if person_id is None:
        return ""
    name = await session.scalar(select(Person.full_name).where(Person.id == person_id))
    return name or ""


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    person_id: int,
    period: str,
    kind: str,
    channel: str,
    now: datetime,
) -> bool:
    """Write and commit the ledger row before sending; False if another sender has it."""
    try:
        async with unit_of_work(sessions) as session:
            session.add(
                ReminderLedger(
                    person_id=person_id,
                    period=period,
                    kind=kind,
                    status=SENDING,
                    channel=channel,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


async def settle(
    session: AsyncSession, person_id: int, period: str, kind: str, status: str, now: datetime
) -> None:
    row = await session.scalar(
        select(ReminderLedger).where(
            ReminderLedger.person_id == person_id,
            ReminderLedger.period == period,
            ReminderLedger.kind == kind,
        )
    )
    assert row is not None, "settled a reminder that was never claimed"
    row.status = status
    row.sent_at = now
