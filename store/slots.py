"""What each reporter owes for a period, derived at each call from the registry and the people
(so an invitation or a reassignment changes what is owed with no job to re-create), and
whether it has been filled by a report or a confirmed paper copy. A report sent back for
changes does not fill it until a new version fixes it (domain.slots, the rule of the rate).

Merges: from the period after an organisation's last day, what it owed is owed by the
organisation that answers for it then (domain.orgs.answering: the one it was merged into, and
so on through every merge), under that one's name, and its people still attached to it are
counted among the successor's (reminded, listed) — they are told so when they report
(handlers.reporting). A report already sent for a period keeps its organisation's
slot; the months before the merge keep the predecessor's.

Who sees which slots (`sees_slot`): a commune's or ward's committee its clusters (those whose
`commune_id` is it) and its own; a district's committee the clusters of its district (also
those it shares with another district) and the organisations counted in it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.calendar import Calendar, Period
from domain.orgs import answering
from domain.roles import LOCAL_COMMITTEES, REPORTER_ROLES, OrgKind, Role
from domain.slots import Review, Slot, counted, owes, review_of
from domain.subjects import Subject
from domain.text import fold
from store.models import (
    Cluster,
    ClusterDistrict,
    District,
    Organisation,
    PaperReceipt,
    Person,
    PersonCluster,
    Report,
)
from store.orgs import place_of
from store.summaries import plain_rows

COMMUNES = frozenset({OrgKind.COMMUNE_COMMITTEE, OrgKind.WARD_COMMITTEE})


def first_day(period: Period) -> date:
    return date(period.year, period.month, 1)


class _Org(NamedTuple):
    id: int
    name: str
    kind: str
    valid_from: date | None
    valid_to: date | None
    merged_into_id: int | None


class _Version(NamedTuple):
    """A report's version of the period, as its slot needs it (domain.slots.counted)."""

    subject: Subject
    review_state: str
    reference: str
    submitted_at: datetime
    on_time: bool


async def slots_for(session: AsyncSession, period: Period, calendar: Calendar) -> list[Slot]:
    """Every slot owed for the period, filled or not, by district, reporter and title. Read
    as plain rows (no ORM objects): it runs on every update and on every summary."""
    day = first_day(period)
    districts: dict[int, str] = dict(
        (await plain_rows(session, select(District.id, District.name))).all()
    )
    orgs = {
        row[0]: _Org(*row)
        for row in (
            await plain_rows(
                session,
                select(
                    Organisation.id,
                    Organisation.name,
                    Organisation.kind,
                    Organisation.valid_from,
                    Organisation.valid_to,
                    Organisation.merged_into_id,
                ),
            )
        )
    }
    reporting = (Person.active.is_(True), Person.role.in_([r.value for r in REPORTER_ROLES]))
    people = (
        await plain_rows(
            session,
            select(Person.id, Person.role, Person.organisation_id, Person.district_id)
            .where(*reporting)
            .order_by(Person.id),
        )
    ).all()
    held: dict[int, list[tuple[str, str, int | None]]] = {}  # an investor's clusters
    for person_id, code, name, district_id in await plain_rows(
        session,
        select(PersonCluster.person_id, Cluster.code, Cluster.name, Cluster.district_id)
        .join(Cluster, Cluster.id == PersonCluster.cluster_id)
        .join(Person, Person.id == PersonCluster.person_id)
        .where(*reporting, Person.role == Role.INVESTOR.value)
        .order_by(PersonCluster.person_id, PersonCluster.cluster_id),
    ):
        held.setdefault(person_id, []).append((code, name, district_id))
    slots: dict[Subject, Slot] = {}
    gone: set[Subject] = set()  # organisations that do not exist in the period
    successors: dict[Subject, tuple[_Org, str | None, str]] = {}  # … and who answers for them
    for person_id, role, org_id, district_id in people:
        if role == Role.INVESTOR:
            for code, name, cluster_district in held.get(person_id, ()):
                subject = Subject.cluster(code)
                slot = slots.get(subject)
                if slot is None:
                    slot = slots[subject] = Slot(
                        subject,
                        name,
                        "investor",
                        districts.get(cluster_district, "") if cluster_district is not None else "",
                    )
                slot.people.append(person_id)
        elif org_id is not None and (org := orgs.get(org_id)) is not None:
            subject = Subject.org(org.id)
            area = _area(districts.get(district_id) if district_id is not None else None, org)
            if not owes(period, org.valid_from, org.valid_to):
                gone.add(subject)
                successor = orgs.get(answering(org.id, day, orgs), org)
                if successor is not org and owes(period, successor.valid_from, successor.valid_to):
                    successors.setdefault(subject, (successor, role, area))
            slot = slots.get(subject)
            if slot is None:
                slot = slots[subject] = Slot(subject, org.name, role or "", area)
            slot.people.append(person_id)
    reports = [
        _Version(*row)
        for row in (
            await plain_rows(
                session,
                select(
                    Report.subject,
                    Report.review_state,
                    Report.reference,
                    Report.submitted_at,
                    Report.on_time,
                )
                .where(Report.period == str(period))
                .order_by(Report.version),
            )
        )
    ]
    papers = (
        await plain_rows(
            session,
            select(PaperReceipt.subject, PaperReceipt.claimed_at, PaperReceipt.confirmed_at).where(
                PaperReceipt.period == str(period), PaperReceipt.status == "confirmed"
            ),
        )
    ).all()
    # a report (or paper) sent keeps the organisation it was for; an organisation gone without
    # one hands its slot and its people to its successor
    kept = {r.subject for r in reports} | {subject for subject, _, _ in papers}
    for subject in gone - kept:
        left = slots.pop(subject)
        if subject not in successors:
            continue
        successor, role, area = successors[subject]
        heir_subject = Subject.org(successor.id)
        heir = slots.setdefault(heir_subject, Slot(heir_subject, successor.name, role or "", area))
        heir.people.extend(p for p in left.people if p not in heir.people)
    versions: dict[Subject, list[_Version]] = {}
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
    for subject, claimed_at, confirmed_at in papers:
        on_paper = slots.get(subject)
        if on_paper is not None and on_paper.report is None:
            on_paper.paper = True
            when = claimed_at or confirmed_at
            on_paper.on_time = when is not None and when < deadline
    return sorted(slots.values(), key=lambda s: (fold(s.district), s.reporter, fold(s.title)))


def _area(district: str | None, org: _Org) -> str:
    """Where an organisation's slot is counted: the person's district (for a commune or ward,
    the district it was part of); a commune or ward with none is its own area."""
    if district is not None:
        return district
    if org.kind in LOCAL_COMMITTEES and org.kind != OrgKind.DISTRICT_COMMITTEE:
        return place_of(org.name)
    return ""


# --- who sees which slots -------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a cluster is, for who sees it: its districts (the plan's and any sharing it) and
    its commune's or ward's committee."""

    districts: frozenset[int]
    commune_id: int | None


def commune_of(person: Person) -> int | None:
    """The commune's or ward's committee a district-role person is of; None for anyone else
    (a district's committee, whose area is its district)."""
    org = person.organisation
    if person.role == Role.DISTRICT and org is not None and org.kind in COMMUNES:
        return org.id
    return None


def covers(
    person: Person, districts: frozenset[int] | tuple[int, ...], commune: int | None
) -> bool:
    """Whether a cluster in these districts and this commune is in a district-role person's
    area: a commune's or ward's committee sees its own clusters, not the former district's."""
    mine = commune_of(person)
    if mine is not None:
        return commune == mine
    return person.district_id is not None and person.district_id in districts


async def cluster_places(session: AsyncSession) -> dict[str, Place]:
    """Every cluster's Place, by code."""
    shared: dict[int, set[int]] = {}
    for cluster_id, district_id in await session.execute(
        select(ClusterDistrict.cluster_id, ClusterDistrict.district_id)
    ):
        shared.setdefault(cluster_id, set()).add(district_id)
    rows = await session.execute(
        select(Cluster.id, Cluster.code, Cluster.district_id, Cluster.commune_id)
    )
    return {
        code: Place(
            frozenset({*([district] if district is not None else []), *shared.get(id_, ())}),
            commune,
        )
        for id_, code, district, commune in rows
    }


def sees_slot(person: Person, slot: Slot, places: Mapping[str, Place]) -> bool:
    """Whether a district-role person sees this slot (in /chuabaocao, their reporting rate and
    the digest after the deadline): the clusters of their area, their own slot, and for a
    district's committee the organisations counted in its district."""
    code = slot.subject.code
    if code is not None:
        place = places.get(code)
        return place is not None and covers(person, place.districts, place.commune_id)
    if person.id in slot.people or slot.subject.org_id == person.organisation_id:
        return True
    if commune_of(person) is None and person.district is not None:
        return slot.district == person.district.name
    return False
