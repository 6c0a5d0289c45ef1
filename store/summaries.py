"""The reads behind a period's summary and its workbook: the clusters and their reports, the
organisations' reports and the reminders sent (the tasks and duties: store/duties.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, TypeVarTuple

from sqlalchemy import Result, Select, String, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.subjects import Subject
from store.models import (
    Cluster,
    ClusterStep,
    District,
    Organisation,
    ReminderLedger,
    Report,
)

_Ts = TypeVarTuple("_Ts")


async def plain_rows(session: AsyncSession, query: Select[*_Ts]) -> Result[*_Ts]:
    """A query's plain rows, executed on the session's connection: no ORM layer per row (a
    summary reads tens of thousands). Pending changes are flushed first, as a query through
    the session would."""
    if session.sync_session.autoflush:
        await session.flush()
    return await (await session.connection()).execute(query)


class Registered(NamedTuple):
    """A cluster as the summary counts it: its code and its kind (domain.roles.ClusterKind)."""

    code: str
    kind: str


async def clusters(session: AsyncSession) -> list[Registered]:
    """Every cluster's code and kind, in the order of the registry's rows."""
    rows = await plain_rows(session, select(Cluster.code, Cluster.kind).order_by(Cluster.id))
    return [Registered(code, kind) for code, kind in rows]


class PlannedStep(NamedTuple):
    """A step of a cluster's plan (store.models.ClusterStep) as the month's report reads it."""

    kind: str
    text: str
    owner: str | None  # the owner organisation's name; None: none named


class PlannedCluster(NamedTuple):
    """A cluster with what the month's report prints of it: its district's, investor's and
    commune's names, and its plan's steps in order."""

    code: str
    name: str
    kind: str
    district: str | None
    investor: str | None
    investor_kind: str | None
    commune: str | None
    occupancy_rate: Decimal | None
    planned_groundbreaking: str | None
    planned_completion: str | None
    steps: tuple[PlannedStep, ...]


async def clusters_with_plan(session: AsyncSession) -> list[PlannedCluster]:
    """Every cluster by appendix, section and number, with its district, investor, commune,
    and steps with their owners (plain rows: no ORM objects)."""
    owner = aliased(Organisation)
    steps: dict[int, list[PlannedStep]] = {}
    for cluster_id, kind, text, owner_name in await plain_rows(
        session,
        select(ClusterStep.cluster_id, ClusterStep.kind, ClusterStep.text, owner.name)
        .outerjoin(owner, owner.id == ClusterStep.owner_id)
        .order_by(ClusterStep.cluster_id, ClusterStep.seq),
    ):
        steps.setdefault(cluster_id, []).append(PlannedStep(kind, text, owner_name))
    investor = aliased(Organisation)
    commune = aliased(Organisation)
    query = (
        select(
            Cluster.id,
            Cluster.code,
            Cluster.name,
            Cluster.kind,
            District.name,
            investor.name,
            investor.kind,
            commune.name,
            Cluster.occupancy_rate,
            Cluster.planned_groundbreaking,
            Cluster.planned_completion,
        )
        .outerjoin(District, District.id == Cluster.district_id)
        .outerjoin(investor, investor.id == Cluster.investor_id)
        .outerjoin(commune, commune.id == Cluster.commune_id)
        .order_by(Cluster.appendix, Cluster.section, Cluster.number)
    )
    return [
        PlannedCluster(*row[1:], tuple(steps.get(row[0], ())))
        for row in (await plain_rows(session, query))
    ]


# A report's subject as stored (`cluster:<code>`), read as text: parsing 25,000 of them into
# Subjects is a measurable part of reading a month's history.
_SUBJECT_TEXT = type_coerce(Report.subject, String)
_CODE_AT = len(Subject.CLUSTER)


async def cluster_history(
    session: AsyncSession, up_to: str
) -> Iterator[tuple[str, str, int, dict[str, Any]]]:
    """Every cluster report up to and including period `up_to` (YYYY-MM) as plain rows, by
    cluster and newest first (period, then version): the cluster's code, period, version and
    answers. The rows are fetched here; each report's answers are decoded as it is reached,
    so a caller that keeps only what it needs never holds the whole history decoded."""
    query = (
        select(_SUBJECT_TEXT, Report.period, Report.version, Report.answers)
        .where(Report.period <= up_to, Report.subject.startswith(Subject.CLUSTER))
        .order_by(_SUBJECT_TEXT, Report.period.desc(), Report.version.desc())
    )
    rows = await plain_rows(session, query)
    return (
        (subject[_CODE_AT:], when, version, answers) for subject, when, version, answers in rows
    )


async def month_cluster_reports(
    session: AsyncSession, period: str
) -> dict[str, tuple[dict[str, Any], int]]:
    """Cluster code → the answers of its report of `period` (its latest version) and who sent
    it."""
    query = (
        select(_SUBJECT_TEXT, Report.answers, Report.submitted_by_person_id)
        .where(Report.period == period, Report.subject.startswith(Subject.CLUSTER))
        .order_by(Report.version)
    )
    rows = await plain_rows(session, query)
    return {subject[_CODE_AT:]: (answers, person) for subject, answers, person in rows}


async def organisation_reports(session: AsyncSession, period: str) -> list[Report]:
    """The organisations' reports of one period, every version, oldest version first."""
    query = (
        select(Report)
        .where(Report.period == period, Report.subject.startswith(Subject.ORG))
        .order_by(Report.version)
    )
    return list((await session.scalars(query)).all())


async def last_reminded(
    session: AsyncSession, ids: Iterable[int], period: str
) -> dict[int, datetime]:
    """Person id → when they were last sent a reminder for the period."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(
        select(ReminderLedger.person_id, func.max(ReminderLedger.sent_at))
        .where(
            ReminderLedger.person_id.in_(wanted),
            ReminderLedger.period == period,
            ReminderLedger.status == "sent",
        )
        .group_by(ReminderLedger.person_id)
    )
    return {pid: at for pid, at in rows.all() if at is not None}


async def organisation_names(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    """Organisation id → name, for the ids given."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(wanted))
    )
    return {oid: name for oid, name in rows.all()}
