"""The numbers Sở Công Thương sends upward for a period: the reporting rate, and plan versus
actual for the plan's targets, from the latest report of each cluster up to that period."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.calendar import Calendar, Period
from domain.roles import ClusterKind
from domain.slots import Rate, Slot, rate
from domain.subjects import Subject
from reports.progress import Answer, latest_answers
from store.models import Cluster, Report, Target
from store.slots import slots_for

FOUNDED = (ClusterKind.FOUNDED_2018_2020.value,)
OPERATING = (ClusterKind.OPERATING_COMPLETE.value, ClusterKind.OPERATING_INCOMPLETE.value)


@dataclass(frozen=True)
class TargetRow:
    code: str
    label: str
    plan_min: Decimal | None
    plan_max: Decimal | None
    unit: str  # cluster | percent
    actual: Decimal | None  # None: the bot has no figure for it
    count: int | None = None  # for percentages: how many clusters meet it
    of: int | None = None  # ... out of how many

    @property
    def met(self) -> bool | None:
        if self.actual is None or self.plan_min is None:
            return None
        return self.actual >= self.plan_min


@dataclass
class Summary:
    period: Period
    slots: list[Slot]
    total: Rate
    by_district: list[tuple[str, Rate]]
    by_reporter: list[tuple[str, Rate]]
    targets: list[TargetRow]
    answers: dict[str, dict[str, Answer]] = field(default_factory=dict)  # cluster code → answers

    @property
    def missing(self) -> list[Slot]:
        return [s for s in self.slots if not s.filled]


def _yes(answers: dict[str, Answer], qid: str, *values: str) -> bool:
    answer = answers.get(qid)
    return answer is not None and answer.value in values


def _number(answers: dict[str, Answer], qid: str) -> Decimal | None:
    answer = answers.get(qid)
    if answer is None or answer.value is None:
        return None
    return Decimal(answer.value)


def _quarter(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


async def cluster_answers(
    session: AsyncSession, period: Period, clusters: list[Cluster]
) -> dict[str, dict[str, Answer]]:
    """The latest answers of every cluster, from its reports up to and including `period`."""
    reports = (
        await session.scalars(
            select(Report).where(
                Report.period <= str(period), Report.subject.startswith(Subject.CLUSTER)
            )
        )
    ).all()
    grouped: dict[str, list[Report]] = defaultdict(list)
    for report in reports:
        grouped[report.subject.ref].append(report)
    return {c.code: latest_answers(grouped.get(c.code, [])) for c in clusters}


def _targets(
    targets: list[Target], clusters: list[Cluster], answers: dict[str, dict[str, Answer]]
) -> list[TargetRow]:
    founded = [c for c in clusters if c.kind in FOUNDED]
    operating = [c for c in clusters if c.kind in OPERATING]
    new = [c for c in clusters if c.kind == ClusterKind.FOUNDED_2021]
    broke_ground: dict[str, int] = defaultdict(int)
    for cluster in founded:
        a = answers.get(cluster.code, {})
        if _yes(a, "groundbreaking", "yes") and a.get("groundbreaking_date") is not None:
            value = a["groundbreaking_date"].value
            if value:
                broke_ground[_quarter(date.fromisoformat(value))] += 1
    finished = sum(1 for c in founded if _number(answers.get(c.code, {}), "htkt") == 100)
    ww_new = sum(
        1 for c in founded + new if _yes(answers.get(c.code, {}), "wastewater", "operating")
    )
    ww_operating = sum(
        1 for c in operating if _yes(answers.get(c.code, {}), "wastewater", "operating")
    )

    def percent(count: int, total: int) -> Decimal:
        return (Decimal(100) * count / total).quantize(Decimal("0.1")) if total else Decimal(0)

    rows: list[TargetRow] = []
    for target in targets:
        actual: Decimal | None = None
        count = of = None
        if target.code.startswith("groundbreakings_q"):
            actual = Decimal(broke_ground.get(target.period, 0))
        elif target.code == "groundbreakings":
            actual = Decimal(sum(broke_ground.values()))
        elif target.code == "infrastructure_completed":
            actual = Decimal(finished)
        elif target.code == "new_clusters":
            actual = Decimal(len(new))
        elif target.code == "wastewater_new":
            count, of = ww_new, len(founded) + len(new)
            actual = percent(count, of)
        elif target.code == "wastewater_operating":
            count, of = ww_operating, len(operating)
            actual = percent(count, of)
        rows.append(
            TargetRow(
                target.code,
                target.label,
                target.value_min,
                target.value_max,
                target.unit,
                actual,
                count,
                of,
            )
        )
    return rows


async def summarise(
    session: AsyncSession, period: Period, calendar: Calendar, *, district: str | None = None
) -> Summary:
    """The period's summary; `district` narrows the reporting rate to one district."""
    slots = await slots_for(session, period, calendar)
    if district is not None:
        slots = [s for s in slots if s.district == district]
    by_district: dict[str, list[Slot]] = defaultdict(list)
    by_reporter: dict[str, list[Slot]] = defaultdict(list)
    for slot in slots:
        by_district[slot.district].append(slot)
        by_reporter[slot.reporter].append(slot)
    clusters = list((await session.scalars(select(Cluster).order_by(Cluster.id))).all())
    answers = await cluster_answers(session, period, clusters)
    targets = list((await session.scalars(select(Target).order_by(Target.id))).all())
    return Summary(
        period=period,
        slots=slots,
        total=rate(slots),
        by_district=[(d, rate(s)) for d, s in sorted(by_district.items())],
        by_reporter=[(r, rate(s)) for r, s in sorted(by_reporter.items())],
        targets=_targets(targets, clusters, answers),
        answers=answers,
    )
