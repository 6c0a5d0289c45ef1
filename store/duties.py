"""Who leads what beyond the clusters: the Phụ lục 1 tasks with their leads, the section III
duties (store/registry/duties.csv) with whose they are, and what each organisation last
reported on them."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from domain.subjects import Subject
from store.models import Duty, DutyAssignment, Report, Task


@dataclass(frozen=True)
class Latest:
    """An organisation's latest answer to one question, and the month of its report."""

    value: str | None
    period: str


async def duties_of(
    session: AsyncSession, organisations: int | Collection[int] | None, group: str
) -> list[Duty]:
    """The section III duties of the organisation (or of several: one and those merged into
    it), itself or as one of `group` (`all_districts`, `all_departments`), in the plan's
    order."""
    if organisations is None:
        ids: list[int] = []
    else:
        ids = [organisations] if isinstance(organisations, int) else list(organisations)
    return list(
        (
            await session.scalars(
                select(Duty)
                .join(DutyAssignment, DutyAssignment.duty_id == Duty.id)
                .where(
                    or_(
                        DutyAssignment.organisation_id.in_(ids),
                        DutyAssignment.group_code == group,
                    )
                )
                .distinct()
                .order_by(Duty.source_line, Duty.code)
            )
        ).all()
    )


async def all_duties(session: AsyncSession) -> list[Duty]:
    """Every duty asked, in the plan's order."""
    return list((await session.scalars(select(Duty).order_by(Duty.source_line, Duty.code))).all())


async def tasks_with_leads(session: AsyncSession) -> list[Task]:
    """The Phụ lục 1 tasks by number, with who leads each."""
    return list(
        (
            await session.scalars(
                select(Task).options(selectinload(Task.assignments)).order_by(Task.number)
            )
        ).all()
    )


async def latest_org_answers(
    session: AsyncSession, period: str, organisations: Collection[int] | None = None
) -> dict[int, dict[str, Latest]]:
    """Organisation id → its latest answer to each per-item question (`t9.status`,
    `d5-1.percent`) in its reports up to and including `period` (the latest version of a
    month, a later month over an earlier one); every organisation's, or those given."""
    wanted = (
        Report.subject.in_([str(Subject.org(o)) for o in organisations])
        if organisations is not None
        else Report.subject.startswith(Subject.ORG)
    )
    rows = await session.execute(
        select(Report.subject, Report.period, Report.answers)
        .where(wanted, Report.period <= period)
        .order_by(Report.period, Report.version)
    )
    out: dict[int, dict[str, Latest]] = {}
    for subject, month, answers in rows.all():
        org_id = subject.org_id
        if org_id is None:
            continue
        mine = out.setdefault(org_id, {})
        for qid, entry in (answers or {}).items():
            if "." in qid and isinstance(entry, dict) and "v" in entry:
                value = entry.get("v")
                mine[qid] = Latest(None if value in (None, "") else str(value), month)
    return out
