"""Where a cluster stands: its latest figures and the next step of the plan's chain."""

from __future__ import annotations

import calendar as months
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.subjects import Subject
from store.models import Cluster, ClusterStep, Person, Report

# The chain of Phụ lục 3, in order: the step kind, and when the latest answers say it is done.
CHAIN: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("qhct_approval", "qhct", ("yes",)),
    ("compensation_approval", "compensation", ("yes",)),
    ("gpmb", "gpmb", ("100",)),
    ("funds_transfer", "gpmb_funds", ("fully",)),
    ("rice_land_approval", "rice_land", ("approved", "not_needed")),
    ("land_allocation", "land_lease", ("100",)),
    ("land_lease", "land_lease", ("100",)),
    ("groundbreaking", "groundbreaking", ("yes",)),
    ("infrastructure_complete", "htkt", ("100",)),
)
BEFORE_GROUNDBREAKING = {k for k, _q, _d in CHAIN[:7]} | {"groundbreaking"}


@dataclass(frozen=True)
class Answer:
    value: str | None
    reason: str | None
    report: Report


@dataclass(frozen=True)
class NextStep:
    step: ClusterStep
    late: bool


def latest_answers(reports: list[Report]) -> dict[str, Answer]:
    """Each question's most recent answer, from reports newest first (period, then version)."""
    out: dict[str, Answer] = {}
    for report in sorted(reports, key=lambda r: (r.period, r.version), reverse=True):
        for qid, entry in report.answers.items():
            if (qid.startswith("_") and qid != "_location") or qid in out:
                continue
            if isinstance(entry, dict):
                out[qid] = Answer(entry.get("v"), entry.get("reason"), report)
    return out


def _done(value: str | None, done: tuple[str, ...]) -> bool:
    if value is None:
        return False
    try:
        return any(Decimal(value) == Decimal(d) for d in done)
    except ArithmeticError:
        return value in done


def month_end(iso_month: str, zone: Any) -> datetime:
    year, month = (int(x) for x in iso_month.split("-"))
    last = months.monthrange(year, month)[1]
    return datetime(year, month, last, 23, 59, 59, tzinfo=zone)


def quarter_end(iso_quarter: str, zone: Any) -> datetime:
    year, quarter = iso_quarter.split("-Q")
    return month_end(f"{year}-{int(quarter) * 3:02d}", zone)


def next_step(
    cluster: Cluster, steps: list[ClusterStep], answers: dict[str, Answer], now: datetime
) -> NextStep | None:
    """The first step of the plan's chain for this cluster that the answers do not show done;
    late when the plan's groundbreaking month (or completion quarter) has passed."""
    by_kind = {s.kind: s for s in steps}
    zone = now.tzinfo
    for kind, qid, done in CHAIN:
        step = by_kind.get(kind)
        if step is None:
            continue
        answer = answers.get(qid)
        if _done(answer.value if answer else None, done):
            continue
        late = False
        if kind in BEFORE_GROUNDBREAKING and cluster.planned_groundbreaking:
            late = now > month_end(cluster.planned_groundbreaking, zone)
        elif kind == "infrastructure_complete" and cluster.planned_completion:
            late = now > quarter_end(cluster.planned_completion, zone)
        return NextStep(step, late)
    return None


async def reports_of(
    session: AsyncSession, subject: Subject, up_to: str | None = None
) -> list[Report]:
    query = select(Report).where(Report.subject == subject)
    if up_to is not None:
        query = query.where(Report.period <= up_to)
    return list((await session.scalars(query.order_by(Report.period, Report.version))).all())


async def sender_names(session: AsyncSession, reports: list[Report]) -> dict[int, str]:
    ids = {r.submitted_by_person_id for r in reports}
    if not ids:
        return {}
    rows = await session.execute(select(Person.id, Person.full_name).where(Person.id.in_(ids)))
    return {pid: name for pid, name in rows.all()}
