"""What each reporter owes for a period, derived at each call from the registry and the people
(so an invitation or a reassignment changes what is owed with no job to re-create), and
whether it has been filled by a report or a confirmed paper copy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from domain.calendar import Calendar, Period
from domain.roles import Role
from domain.text import fold
from store.models import Cluster, PaperReceipt, Person, Report

REPORTER_ROLES = (Role.INVESTOR, Role.DISTRICT, Role.DEPARTMENT)


@dataclass
class Slot:
    subject: str  # cluster:<code> | org:<id>
    title: str
    reporter: str  # investor | district | department
    district: str  # the district's name, "" for city departments
    people: list[int] = field(default_factory=list)
    report: str | None = None  # reference of the first report filed for the period
    submitted_at: datetime | None = None
    on_time: bool | None = None
    paper: bool = False

    @property
    def filled(self) -> bool:
        return self.report is not None or self.paper


@dataclass(frozen=True)
class Rate:
    expected: int
    received: int
    on_time: int
    late: int

    @property
    def percent(self) -> float:
        return 100.0 * self.received / self.expected if self.expected else 0.0


def rate(slots: list[Slot]) -> Rate:
    received = [s for s in slots if s.filled]
    on_time = sum(1 for s in received if s.on_time)
    return Rate(len(slots), len(received), on_time, len(received) - on_time)


async def slots_for(session: AsyncSession, period: Period, calendar: Calendar) -> list[Slot]:
    people = (
        await session.scalars(
            select(Person)
            .where(Person.active.is_(True), Person.role.in_([r.value for r in REPORTER_ROLES]))
            .options(
                selectinload(Person.clusters).selectinload(Cluster.district),
                selectinload(Person.organisation),
                selectinload(Person.district),
            )
            .order_by(Person.id)
        )
    ).all()
    slots: dict[str, Slot] = {}
    for person in people:
        if person.role == Role.INVESTOR:
            for cluster in person.clusters:
                slot = slots.setdefault(
                    f"cluster:{cluster.code}",
                    Slot(
                        f"cluster:{cluster.code}",
                        cluster.name,
                        "investor",
                        cluster.district.name if cluster.district else "",
                    ),
                )
                slot.people.append(person.id)
        elif person.organisation is not None:
            slot = slots.setdefault(
                f"org:{person.organisation_id}",
                Slot(
                    f"org:{person.organisation_id}",
                    person.organisation.name,
                    person.role or "",
                    person.district.name if person.district else "",
                ),
            )
            slot.people.append(person.id)
    reports = (
        await session.scalars(
            select(Report).where(Report.period == str(period)).order_by(Report.version)
        )
    ).all()
    for report in reports:
        filed = slots.get(report.subject)
        if filed is not None and filed.report is None:  # the first version decides timeliness
            filed.report = report.reference
            filed.submitted_at = report.submitted_at
            filed.on_time = report.on_time
    deadline = calendar.deadline(period)
    papers = (
        await session.scalars(
            select(PaperReceipt).where(
                PaperReceipt.period == str(period), PaperReceipt.status == "confirmed"
            )
        )
    ).all()
    for paper in papers:
        on_paper = slots.get(paper.subject)
        if on_paper is not None and on_paper.report is None:
            on_paper.paper = True
            when = paper.claimed_at or paper.confirmed_at
            on_paper.on_time = when is not None and when < deadline
    return sorted(slots.values(), key=lambda s: (fold(s.district), s.reporter, fold(s.title)))
