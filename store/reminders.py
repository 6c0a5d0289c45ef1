"""The reminders' queries and their ledger: one row per (person, period, kind), written and
committed before the message goes, settled after."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload, raiseload

from domain.subjects import Subject
from store.db import unit_of_work
from store.models import (
    ChannelIdentity,
    Cluster,
    Organisation,
    PaperReceipt,
    Person,
    PersonCluster,
    ReminderLedger,
)

SENDING = "sending"  # claimed, not yet settled: a crash leaves it so
UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Chat:
    """A person's chat on one messenger, as a plain row."""

    channel: str
    external_id: str
    reachable: bool
    last_seen_at: datetime | None


async def active_people(session: AsyncSession) -> list[Person]:
    """Everyone with access, with their organisation and district. Their chats and clusters
    are read as plain rows (`active_chats`, `cluster_codes`): loading them as objects took
    most of a second for 5,000 people, before the first reminder could go."""
    return list(
        (
            await session.scalars(
                select(Person)
                .where(Person.active.is_(True))
                .options(
                    joinedload(Person.organisation),
                    joinedload(Person.district),
                    raiseload(Person.identities),
                    raiseload(Person.clusters),
                )
                .order_by(Person.id)
            )
        ).all()
    )


async def active_chats(session: AsyncSession) -> dict[int, list[Chat]]:
    """Person id → the chats of everyone with access."""
    rows = await session.execute(
        select(
            ChannelIdentity.person_id,
            ChannelIdentity.channel,
            ChannelIdentity.external_id,
            ChannelIdentity.reachable,
            ChannelIdentity.last_seen_at,
        )
        .join(Person, Person.id == ChannelIdentity.person_id)
        .where(Person.active.is_(True))
        .order_by(ChannelIdentity.id)
    )
    chats: defaultdict[int, list[Chat]] = defaultdict(list)
    for person, channel, external_id, reachable, seen in rows.all():
        chats[person].append(Chat(channel, external_id, reachable, seen))
    return dict(chats)


async def cluster_codes(session: AsyncSession) -> dict[int, set[str]]:
    """Person id → the codes of the clusters they report on."""
    rows = await session.execute(
        select(PersonCluster.person_id, Cluster.code).join(
            Cluster, Cluster.id == PersonCluster.cluster_id
        )
    )
    codes: defaultdict[int, set[str]] = defaultdict(set)
    for person, code in rows.all():
        codes[person].add(code)
    return dict(codes)


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
            await session.execute(
                insert(ReminderLedger).values(
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
    """The reminder's outcome, on its claimed row (one statement: the writer's lock is held
    for each reminder twice, claimed and settled, and briefly)."""
    done = await session.execute(
        update(ReminderLedger)
        .where(
            ReminderLedger.person_id == person_id,
            ReminderLedger.period == period,
            ReminderLedger.kind == kind,
        )
        .values(status=status, sent_at=now)
        .execution_options(synchronize_session=False)
    )
    assert cast(CursorResult[Any], done).rowcount == 1, "settled a reminder never claimed"
