"""The reads behind where a cluster stands: the reports of a subject, and who sent them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.subjects import Subject
from store.models import Person, Report


async def reports_of(
    session: AsyncSession, subject: Subject, up_to: str | None = None
) -> list[Report]:
    """Every report of the subject (up to and including period `up_to`), by period, then
    version."""
    query = select(Report).where(Report.subject == subject)
    if up_to is not None:
        query = query.where(Report.period <= up_to)
    return list((await session.scalars(query.order_by(Report.period, Report.version))).all())


async def person_names(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    """Person id → full name, for the ids given."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(select(Person.id, Person.full_name).where(Person.id.in_(wanted)))
    return {pid: name for pid, name in rows.all()}


async def sender_names(session: AsyncSession, reports: list[Report]) -> dict[int, str]:
    """Who sent each report: person id → full name."""
    return await person_names(session, (r.submitted_by_person_id for r in reports))
