"""Plans by year as a table: validate, import (all or nothing; adds or replaces a year's
plan), export, and the reads of a year's plan.

The table has one row per target; the plan's own columns (number, date, the annual report's
deadlines) are repeated on each row of its year, so that the rows can be sorted or filtered
in a spreadsheet and still say which plan they belong to. Errors are `store.clusters.RowError`s,
named by line and column as the cluster import names them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from domain.text import MAX_YEAR, MIN_YEAR, parse_decimal, parse_percent
from store.clusters import ImportRejected, RowError, TableRow, audit_import, parse_table
from store.models import PlanTarget, YearPlan

__all__ = [
    "COLUMNS",
    "ImportRejected",
    "PlanImportResult",
    "PlanSpec",
    "RowError",
    "TargetSpec",
    "all_plans",
    "nearest_plan",
    "parse_plans",
    "plan_for",
    "to_rows",
    "upsert_plans",
]

COLUMNS = (
    "year",
    "number",
    "signed",
    "annual_due_reporters",
    "annual_due_office",
    "code",
    "label",
    "value_min",
    "value_max",
    "unit",
    "period",
    "source_line",
)
REQUIRED = ("year", "number", "signed", "code", "label", "value_min", "unit")
# the plan's own columns: the same on every row of a year
PLAN_COLUMNS = ("number", "signed", "annual_due_reporters", "annual_due_office")
UNITS = ("cluster", "percent")
CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_TARGET_CODE = 64
MAX_NUMBER = 32  # characters of a plan's number and symbol, as printed
T = TypeVar("T")
_QUARTER_CODE = re.compile(r"_q([1-4])$")
_DAY_VN = re.compile(r"^(\d{1,2})\s*/\s*(\d{1,2})\s*/\s*(\d{4})$")
# Section IV of Kế hoạch 68: the annual report before 20 December (reporters) and before
# 25 December (Sở Công Thương); a plan that does not say otherwise keeps these days.
ANNUAL_DUE_REPORTERS = (12, 20)
ANNUAL_DUE_OFFICE = (12, 25)


@dataclass(frozen=True)
class TargetSpec:
    code: str
    label: str
    value_min: Decimal
    value_max: Decimal | None
    unit: str
    period: str  # YYYY or YYYY-Qn, of the plan's year
    source_line: int | None


@dataclass
class PlanSpec:
    year: int
    number: str
    signed: date
    annual_due_reporters: date
    annual_due_office: date
    line: int  # the first line of the year in the file
    targets: list[TargetSpec] = field(default_factory=list)


@dataclass
class PlanImportResult:
    created: list[int] = field(default_factory=list)  # years
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)


def parse_day(text: str) -> date:
    """`17/3/2021`, `2021-03-17`, or the date and midnight a spreadsheet gives back."""
    text = text.strip()
    if m := _DAY_VN.match(text):
        day, month, year = (int(g) for g in m.groups())
        value = date(year, month, day)
    else:
        try:
            value = datetime.fromisoformat(text).date()
        except ValueError:
            value = date.fromisoformat(text)
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(text)
    return value


def _year(text: str) -> int:
    value = int(parse_decimal(text))
    if str(value) != text.strip().removesuffix(".0") or not MIN_YEAR <= value <= MAX_YEAR:
        raise ValueError(text)
    return value


def parse_plans(header: list[str], rows: list[tuple[int, dict[str, str]]]) -> list[PlanSpec]:
    """Validate every row; raise ImportRejected naming every bad cell by line and column.
    The plans in the file's order of years, each with its targets in the file's order."""
    plans: dict[int, PlanSpec] = {}
    first: dict[int, dict[str, str]] = {}  # year → its first row's plan columns as written

    def parse(row: TableRow) -> None:
        """A good row's target joins its year's plan."""
        year = row.parsed("year", _year, "bad_year")
        signed = row.parsed("signed", parse_day, "bad_date")
        reporters = row.parsed("annual_due_reporters", parse_day, "bad_date")
        office = row.parsed("annual_due_office", parse_day, "bad_date")
        number = " ".join(row.get("number").split())
        if len(number) > MAX_NUMBER:
            row.fail("number", "too_long", number)
        code = row.get("code")
        if code and (not CODE_RE.match(code) or len(code) > MAX_TARGET_CODE):
            row.fail("code", "bad_target_code", code)
        unit = row.get("unit")
        if unit and unit not in UNITS:
            row.fail("unit", "bad_unit", unit)
        parse_value = parse_percent if unit == "percent" else parse_decimal
        problem = "bad_percent" if unit == "percent" else "bad_number"
        low = row.parsed("value_min", parse_value, problem)
        high = row.parsed("value_max", parse_value, problem)
        if isinstance(low, Decimal) and isinstance(high, Decimal) and high < low:
            row.fail("value_max", "bad_range", row.get("value_max"))
        period = row.get("period")
        if isinstance(year, int):
            for column, day in (("annual_due_reporters", reporters), ("annual_due_office", office)):
                if isinstance(day, date) and day.year != year:
                    row.fail(column, "not_the_year", row.get(column))
            period = period.upper() or str(year)
            if period != str(year) and not re.fullmatch(rf"{year}-Q[1-4]", period):
                row.fail("period", "bad_plan_period", row.get("period"))
            elif (quarter := _QUARTER_CODE.search(code)) and period != f"{year}-Q{quarter[1]}":
                row.fail("period", "quarter_code", row.get("period"))
            plan = plans.get(year)
            if plan is not None:
                if any(t.code == code for t in plan.targets):
                    row.fail("code", "duplicate_target", code)
                written = first[year]
                for column in PLAN_COLUMNS:
                    if row.get(column) and not _same(column, row.get(column), written[column]):
                        row.fail(column, "plan_differs", row.get(column))
        source_line = row.parsed("source_line", int, "not_integer")
        if row.errors:
            return
        assert isinstance(year, int) and isinstance(signed, date) and isinstance(low, Decimal)
        plan = plans.get(year)
        if plan is None:
            plan = plans[year] = PlanSpec(
                year=year,
                number=number,
                signed=signed,
                annual_due_reporters=(
                    reporters if isinstance(reporters, date) else date(year, *ANNUAL_DUE_REPORTERS)
                ),
                annual_due_office=(
                    office if isinstance(office, date) else date(year, *ANNUAL_DUE_OFFICE)
                ),
                line=row.line,
            )
            first[year] = {c: row.get(c) for c in PLAN_COLUMNS}
        plan.targets.append(
            TargetSpec(
                code=code,
                label=" ".join(row.get("label").split()),
                value_min=low,
                value_max=high if isinstance(high, Decimal) else None,
                unit=unit,
                period=period,
                source_line=source_line if isinstance(source_line, int) else None,
            )
        )

    parse_table(header, rows, REQUIRED, parse, RowError(1, "year", "no_rows"))
    return list(plans.values())


def _same(column: str, a: str, b: str) -> bool:
    """Whether two cells of a plan column say the same (a date however it is written)."""
    if column in ("signed", "annual_due_reporters", "annual_due_office"):
        try:
            return parse_day(a) == parse_day(b)
        except ValueError:
            return False
    return " ".join(a.split()) == " ".join(b.split())


async def upsert_plans(
    session: AsyncSession, plans: list[PlanSpec], *, actor: str, source: str
) -> PlanImportResult:
    """Add each year's plan, or replace the year's plan with the file's (its number, date,
    deadlines and targets: a target not in the file is removed from that year), inside the
    caller's transaction. The other years are left as they are."""
    years = [p.year for p in plans]
    existing = {
        p.year: p
        for p in (
            await session.scalars(
                select(YearPlan)
                .where(YearPlan.year.in_(years))
                .options(selectinload(YearPlan.targets))
            )
        ).all()
    }
    result = PlanImportResult()
    for spec in plans:
        values = {
            "number": spec.number,
            "signed": spec.signed.isoformat(),
            "annual_due_reporters": spec.annual_due_reporters.isoformat(),
            "annual_due_office": spec.annual_due_office.isoformat(),
        }
        plan = existing.get(spec.year)
        if plan is None:
            plan = YearPlan(year=spec.year, **values)
            plan.targets = [_target(seq, t) for seq, t in enumerate(spec.targets, start=1)]
            session.add(plan)
            result.created.append(spec.year)
            continue
        changed = False
        for key, value in values.items():
            if getattr(plan, key) != value:
                setattr(plan, key, value)
                changed = True
        if _target_values(plan.targets) != [
            _spec_values(seq, t) for seq, t in enumerate(spec.targets, start=1)
        ]:
            by_code = {t.code: t for t in plan.targets}
            kept: list[PlanTarget] = []
            for seq, t in enumerate(spec.targets, start=1):
                target = by_code.get(t.code) or PlanTarget(code=t.code)
                for name, cell in _spec_values(seq, t).items():
                    setattr(target, name, cell)
                kept.append(target)
            plan.targets = kept
            changed = True
        (result.updated if changed else result.unchanged).append(spec.year)
    audit_import(session, "plans", actor, source, result.created, result.updated, result.unchanged)
    await session.flush()
    return result


# a stored target's fields, compared with a file's to tell whether a year changed
TARGET_FIELDS = ("seq", "code", "label", "value_min", "value_max", "unit", "period", "source_line")


def _spec_values(seq: int, t: TargetSpec) -> dict[str, object]:
    return {"seq": seq, **{name: getattr(t, name) for name in TARGET_FIELDS[1:]}}


def _target(seq: int, t: TargetSpec) -> PlanTarget:
    return PlanTarget(**_spec_values(seq, t))


def _target_values(targets: Iterable[PlanTarget]) -> list[dict[str, object]]:
    return [{name: getattr(t, name) for name in TARGET_FIELDS} for t in targets]


async def plan_for(session: AsyncSession, year: int) -> YearPlan | None:
    """The year's plan with its targets, or None when the year has none."""
    query = select(YearPlan).where(YearPlan.year == year).options(selectinload(YearPlan.targets))
    return (await session.scalars(query)).first()


async def nearest_plan(session: AsyncSession, year: int) -> YearPlan | None:
    """The plan of the latest year before `year`, else of the earliest after it: what a year
    without a plan of its own is counted by (which figures, in which unit — not its targets)."""
    before = (
        select(YearPlan)
        .where(YearPlan.year < year)
        .order_by(YearPlan.year.desc())
        .options(selectinload(YearPlan.targets))
    )
    found = (await session.scalars(before)).first()
    if found is not None:
        return found
    after = (
        select(YearPlan)
        .where(YearPlan.year > year)
        .order_by(YearPlan.year)
        .options(selectinload(YearPlan.targets))
    )
    return (await session.scalars(after)).first()


async def all_plans(session: AsyncSession) -> list[YearPlan]:
    """Every year's plan with its targets, by year."""
    query = select(YearPlan).order_by(YearPlan.year).options(selectinload(YearPlan.targets))
    return list((await session.scalars(query)).all())


def _plain(value: Decimal) -> int | float:
    normal = Decimal(str(value)).normalize()
    return int(normal) if normal == normal.to_integral_value() else float(normal)


def to_rows(plans: Iterable[YearPlan]) -> list[dict[str, str | int | float]]:
    """The plans as the table `parse_plans` reads: one row per target."""
    out: list[dict[str, str | int | float]] = []
    for plan in plans:
        for target in plan.targets:
            out.append(
                {
                    "year": plan.year,
                    "number": plan.number,
                    "signed": plan.signed,
                    "annual_due_reporters": plan.annual_due_reporters,
                    "annual_due_office": plan.annual_due_office,
                    "code": target.code,
                    "label": target.label,
                    "value_min": _plain(target.value_min) if target.value_min is not None else "",
                    "value_max": _plain(target.value_max) if target.value_max is not None else "",
                    "unit": target.unit,
                    "period": target.period,
                    "source_line": target.source_line if target.source_line is not None else "",
                }
            )
    return out
