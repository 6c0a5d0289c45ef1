"""What each reporter owes for a period, derived at each call from the registry and the people
(so an invitation or a reassignment changes what is owed with no job to re-create), and
whether it has been filled by a report or a confirmed paper copy. A report sent back for
changes does not fill it until a new version fixes it (domain.slots, the rule of the rate)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from domain.calendar import Calendar, Period
from domain.roles import LOCAL_COMMITTEES, REPORTER_ROLES, OrgKind, Role
from domain.slots import Review, Slot, counted, owes, review_of
from domain.subjects import Subject
from domain.text import fold
from store.models import Cluster, PaperReceipt, Person, Report
from store.orgs import place_of


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
    gone: set[Subject] = set()  # organisations that do not exist in the period
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
            org = person.organisation
            subject = Subject.org(org.id)
            if not owes(period, org.valid_from, org.valid_to):
                gone.add(subject)
            slot = slots.setdefault(
                subject,
                Slot(
                    subject,
                    org.name,
                    person.role or "",
                    _area(person),
                ),
            )
            slot.people.append(person.id)
    reports = (
        await session.scalars(
            select(Report).where(Report.period == str(period)).order_by(Report.version)
        )
    ).all()
    versions: dict[Subject, list[Report]] = {}
    for report in reports:
        if report.subject in slots:
            versions.setdefault(report.subject, []).append(report)
    for subject, filed_versions in versions.items():
        filed = slots[subject]
        latest = filed_versions[-1]
        filed.review = review_of(latest.review_state)
        if filed.review is Review.NEEDS_CHANGES:
            filed.changes = latest.reference
        # the version that counts decides timeliness (domain.slots: the first one, or the one
        # that fixed a report sent back for changes); none while the latest waits for changes
        counts = counted(filed_versions)
        if counts is not None:
            filed.report = counts.reference
            filed.submitted_at = counts.submitted_at
            filed.on_time = counts.on_time
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
    for subject in gone - versions.keys():  # a report sent keeps the organisation it was for
        if not slots[subject].paper:
            del slots[subject]
    return sorted(slots.values(), key=lambda s: (fold(s.district), s.reporter, fold(s.title)))


def _area(person: Person) -> str:
    """Where an organisation's slot is counted: the person's district (for a commune or ward,
    the district it was part of); a commune or ward with none is its own area."""
    if person.district is not None:
        return person.district.name
    org = person.organisation
    if org is not None and org.kind in LOCAL_COMMITTEES and org.kind != OrgKind.DISTRICT_COMMITTEE:
        return place_of(org.name)
    return ""
