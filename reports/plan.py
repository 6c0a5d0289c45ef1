"""The plan a period is compared with, and the office that sends the report upward: a year's
plan (its number, date, targets and the annual report's deadlines) is the store's data
(`ccn-bot plan import`; Kế hoạch 68/KH-UBND of 17/3/2021, year 2021, ships in the registry), and
a period is compared only with the plan of its own year. Here too the words of the document's
heading, and the names of the figures counted for a year that has no plan."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from domain.i18n import N_
from store import plans
from store.models import YearPlan

# Said once wherever a period's year has no plan: its actual figures are shown alone.
NO_PLAN = N_("no plan for {year} yet")
ISSUER = N_("the city People's Committee")
SUBJECT = N_(
    "on the management, investment and development of industrial clusters in Hà Nội in {year}"
)
# What the figures are called in a year without a plan, by target code: the plan's own words
# carry its numbers ("Khởi công … 43 cụm"), which are not that year's. A quarter's part of a
# figure (`<code>_q1` … `_q4`) is named after the quarter: "Quý II/2026: …".
MEASURES = {
    "groundbreakings": N_("Clusters that broke ground"),
    "infrastructure_completed": N_("Clusters with their infrastructure finished"),
    "new_clusters": N_("Clusters newly founded"),
    "wastewater_new": N_("New clusters with a wastewater plant up to standard"),
    "wastewater_operating": N_("Operating clusters with a wastewater plant up to standard"),
    "operating_full_infrastructure": N_("Operating clusters with complete infrastructure"),
}
_QUARTER_PART = re.compile(r"^(.+)_q([1-4])$")


@dataclass(frozen=True)
class Goal:
    """A target of a year's plan, or (value None, `measure` set) a figure counted for a year
    without one."""

    code: str
    label: str  # the plan's words; "" for a figure without a plan
    value_min: Decimal | None
    value_max: Decimal | None
    unit: str  # cluster | percent
    period: str  # YYYY or YYYY-Qn
    measure: str = ""  # a message id naming a figure counted without a plan


@dataclass(frozen=True)
class Plan:
    number: str  # the number and symbol, as printed: 68/KH-UBND
    signed: date
    year: int
    goals: tuple[Goal, ...] = ()
    annual_due_reporters: date | None = None  # the annual report is due before this day
    annual_due_office: date | None = None  # ... and Sở Công Thương's
    issuer: str = ISSUER  # who issued it (a message id)
    subject: str = SUBJECT  # what it is about (a message id)

    def signed_text(self) -> str:
        """`17/3/2021`, as administrative documents cite a date."""
        return f"{self.signed.day}/{self.signed.month}/{self.signed.year}"


def _plan(row: YearPlan) -> Plan:
    return Plan(
        number=row.number,
        signed=date.fromisoformat(row.signed),
        year=row.year,
        goals=tuple(
            Goal(t.code, t.label, t.value_min, t.value_max, t.unit, t.period) for t in row.targets
        ),
        annual_due_reporters=date.fromisoformat(row.annual_due_reporters),
        annual_due_office=date.fromisoformat(row.annual_due_office),
    )


async def plan_of(session: AsyncSession, year: int) -> Plan | None:
    """The plan of `year`, or None: a year is never compared with another year's plan."""
    row = await plans.plan_for(session, year)
    return _plan(row) if row is not None else None


def _moved(period: str, year: int) -> str:
    """A target's period carried to `year`: `2021` → `2026`, `2021-Q2` → `2026-Q2`."""
    _year, sep, quarter = period.partition("-")
    return f"{year}{sep}{quarter}"


async def figures_without_plan(session: AsyncSession, year: int) -> tuple[Goal, ...]:
    """What a year without a plan is counted by: the figures of the nearest year's plan (the
    latest before it, else the earliest after it) that have a name of their own, moved to
    `year`, with no target values."""
    nearest = await plans.nearest_plan(session, year)
    if nearest is None:
        return ()
    out = []
    for target in nearest.targets:
        quarter = _QUARTER_PART.match(target.code)
        name = MEASURES.get(quarter[1] if quarter else target.code)
        if name is None:
            continue
        period = _moved(target.period, year) if target.period[:4].isdigit() else str(year)
        out.append(Goal(target.code, "", None, None, target.unit, period, name))
    return tuple(out)


# The sender: the governing body above it, itself, the symbol of its reports (Nghị định
# 30/2020/NĐ-CP, Phụ lục III: BC = báo cáo) and the title of who signs.
GOVERNING_BODY = N_("HANOI PEOPLE'S COMMITTEE")
OFFICE = N_("DEPARTMENT OF INDUSTRY AND TRADE")
OFFICE_NAME = N_("Department of Industry and Trade")
SYMBOL = "BC-SCT"
SIGNER = N_("DIRECTOR")
PLACE = N_("Hà Nội")
# Section IV of the plan: Sở Công Thương reports to the city People's Committee and the Ministry.
RECIPIENTS = (
    N_("The city People's Committee (to report)"),
    N_("The Ministry of Industry and Trade (to report)"),
    N_("Archive: VT"),
)
