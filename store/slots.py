"""What each reporter owes for a period, derived at each call from the registry and the people
(so an invitation or a reassignment changes what is owed with no job to re-create), and
whether it has been filled by a report or a confirmed paper copy."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from domain.calendar import Calendar, Period
from domain.roles import REPORTER_ROLES, Role
from domain.slots import Slot
from domain.subjects import Subject
from domain.text import fold
from store.models import Cluster, PaperReceipt, Person, Report


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
    slots: dict[Subject, Slot] = {}
    for person in people:
        if person.role == Role.INVESTOR:
            for cluster in person.clusters:
                subject = Subject.cluster(cluster.code)
                slot = slots.setdefault(
                    subject,
                    Slot(
                        subject,
                        cluster.name,
                        "investor",
                        cluster.district.name if cluster.district else "",
                    ),
                )
                slot.people.append(person.id)
        elif person.organisation is not None:
            subject = Subject.org(person.organisation.id)
            slot = slots.setdefault(
                subject,
                Slot(
                    subject,
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
