"""The reads behind a period's summary and its workbook: the clusters and their reports, the
organisations' reports and the reminders sent (the tasks and duties: store/duties.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from domain.subjects import Subject
from store.models import (
    Cluster,
    ClusterStep,
    Organisation,
    ReminderLedger,
    Report,
)


async def clusters(session: AsyncSession) -> list[Cluster]:
    """Every cluster, in the order of the registry's rows."""
    return list((await session.scalars(select(Cluster).order_by(Cluster.id))).all())


async def clusters_with_plan(session: AsyncSession) -> list[Cluster]:
    """Every cluster by appendix, section and number, with its district, investor, commune,
    and steps with their owners."""
    query = (
        select(Cluster)
        .options(
            selectinload(Cluster.district),
            selectinload(Cluster.investor),
            selectinload(Cluster.commune),
            selectinload(Cluster.steps).selectinload(ClusterStep.owner),
        )
        .order_by(Cluster.appendix, Cluster.section, Cluster.number)
    )
    return list((await session.scalars(query)).all())


async def cluster_reports(session: AsyncSession, up_to: str) -> list[Report]:
    """Every report of every cluster up to and including period `up_to` (YYYY-MM)."""
    query = select(Report).where(Report.period <= up_to, Report.subject.startswith(Subject.CLUSTER))
    return list((await session.scalars(query)).all())


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


async def cluster_answer_rows(
    session: AsyncSession, up_to: str
) -> list[tuple[Subject, str, int, dict[str, Any], int]]:
    """Every cluster report up to and including period `up_to` as plain rows, newest first
    (period, then version): subject, period, version, answers and who sent it. Lighter than
    loading the reports themselves, for reading a month's history."""
    query = (
        select(
            Report.subject,
            Report.period,
            Report.version,
            Report.answers,
            Report.submitted_by_person_id,
        )
        .where(Report.period <= up_to, Report.subject.startswith(Subject.CLUSTER))
        .order_by(Report.period.desc(), Report.version.desc())
    )
    return [tuple(row) for row in (await session.execute(query)).all()]
