"""The month's consolidated workbook: a summary sheet with the targets, one sheet per appendix
of the plan with this period's values beside the plan's columns, and the missing reports. The
answers shown, their order and headers are the forms' data (`column:` in store/forms/*.yaml)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.ext.asyncio import AsyncSession

from domain import i18n
from domain.answers import display
from domain.calendar import Calendar
from domain.forms import Form, Question
from domain.i18n import N_
from domain.roles import ClusterKind
from domain.slots import Slot
from domain.subjects import Subject
from reports.missing import missing_rows
from reports.progress import Answer, next_step
from reports.summary import Summary
from store import summaries
from store.models import Cluster, Report, Task

HEADER = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F5FA8")
TITLE = Font(bold=True, size=13)
PERCENT = '0.0#" %"'
DATE = "DD/MM/YYYY"
LOCALE = "vi"  # the language of the workbook sent upward
FORMATS = {"percent": PERCENT, "date": DATE}  # an answer column's number format, by type
WRAP = Alignment(wrap_text=True, vertical="top")
REPORTER_NAMES = {
    "investor": N_("Cluster investors"),
    "district": N_("District People's Committees"),
    "department": N_("Departments"),
}


def _sheet(
    workbook: Workbook, title: str, heading: str, columns: Sequence[tuple[str, int]]
) -> Worksheet:
    sheet: Worksheet = workbook.create_sheet(title)
    sheet.append([heading])
    sheet["A1"].font = TITLE
    sheet.append([name for name, _w in columns])
    for index, (_name, width) in enumerate(columns, start=1):
        cell = sheet.cell(row=2, column=index)
        cell.font, cell.fill, cell.alignment = HEADER, HEADER_FILL, WRAP
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "C3"
    return sheet


def _finish(sheet: Worksheet, formats: dict[int, str] | None = None) -> None:
    if sheet.max_row > 2:
        sheet.auto_filter.ref = f"A2:{get_column_letter(sheet.max_column)}{sheet.max_row}"
    for row in sheet.iter_rows(min_row=3):
        for cell in row:
            cell.alignment = WRAP
            if formats and cell.column in formats and cell.value is not None:
                cell.number_format = formats[cell.column]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text_stays_text(workbook: Workbook) -> None:
    """Names and answers come from people: text a spreadsheet could take for a formula
    (`=HYPERLINK(...)`, `+84...`, `@SUM`) is written as a string, with the quote prefix that
    keeps it text when the cell is edited; it reads exactly as typed. We write no formulas."""
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS):
                    cell.data_type = "s"
                    cell.quotePrefix = True


def _num(value: str | None) -> float | None:
    return float(Decimal(value)) if value not in (None, "") else None


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _local(moment: datetime | None, calendar: Calendar) -> datetime | None:
    return moment.astimezone(calendar.zone).replace(tzinfo=None) if moment else None


async def build(
    session: AsyncSession, summary: Summary, calendar: Calendar, path: Path, now: datetime
) -> Path:
    _ = i18n.gettext_for(LOCALE)
    workbook = Workbook()
    default = workbook.active
    assert default is not None
    workbook.remove(default)
    label = summary.period.label()
    _summary_sheet(workbook, summary, _)
    tasks = await summaries.tasks(session)
    reports = await summaries.organisation_reports(session, str(summary.period))
    _tasks_sheet(workbook, tasks, reports, summary, _)
    clusters = await summaries.clusters_with_plan(session)
    slots = {s.subject: s for s in summary.slots}
    _operating_sheet(workbook, clusters, summary, slots, calendar, _)
    _founded_sheet(workbook, clusters, summary, slots, calendar, now, _)
    missing = await missing_rows(session, summary.period, summary.slots)
    sheet = _sheet(
        workbook,
        _("Missing reports"),
        _("Reports not received for {period}").format(period=label),
        [
            (_("District"), 24),
            (_("Cluster or organisation"), 48),
            (_("Reporter"), 22),
            (_("Who owes it"), 36),
            (_("Last reminded"), 18),
        ],
    )
    for row in missing:
        sheet.append(
            [
                row.slot.district or _("City departments"),
                row.slot.title,
                _(REPORTER_NAMES.get(row.slot.reporter, row.slot.reporter)),
                ", ".join(row.people),
                _local(row.last_reminded, calendar),
            ]
        )
    _finish(sheet, {5: "DD/MM/YYYY HH:MM"})
    _text_stays_text(workbook)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path


def _summary_sheet(workbook: Workbook, summary: Summary, _: Any) -> None:
    sheet = workbook.create_sheet(_("Summary"))
    sheet.append(
        [_("Kế hoạch 68/KH-UBND — summary for {period}").format(period=summary.period.label())]
    )
    sheet["A1"].font = TITLE
    sheet.append([])
    header = [_("Reporting rate"), _("Expected"), _("Received"), _("On time"), _("Late"), _("Rate")]
    rows: list[list[Any]] = [[_("Whole city"), *_rate(summary.total)]]
    rows += [[d or _("City departments"), *_rate(r)] for d, r in summary.by_district]
    rows += [[_(REPORTER_NAMES.get(k, k)), *_rate(r)] for k, r in summary.by_reporter]
    _table(sheet, header, rows, {6: PERCENT})
    sheet.append([])
    header = [_("Target of the plan"), _("Plan"), _("Actual"), _("Clusters"), _("Met")]
    rows = []
    for t in summary.targets:
        plan: Any = float(t.plan_min) if t.plan_min is not None else None
        if t.plan_max is not None and t.plan_min != t.plan_max:
            plan = f"{i18n.number(t.plan_min or 0)}–{i18n.number(t.plan_max)}"
        elif t.plan_max is None and t.plan_min is not None and t.unit == "cluster":
            plan = f"≥ {i18n.number(t.plan_min)}"
        actual = float(t.actual) if t.actual is not None else _("not measured")
        counted = f"{t.count}/{t.of}" if t.of is not None else None
        met = None if t.met is None else (_("Yes") if t.met else _("No"))
        rows.append([t.label, plan, actual, counted, met])
    _table(sheet, header, rows, {})
    sheet.column_dimensions["A"].width = 70
    for column in "BCDEF":
        sheet.column_dimensions[column].width = 14


def _rate(r: Any) -> list[Any]:
    return [r.expected, r.received, r.on_time, r.late, round(r.percent, 1)]


def _table(
    sheet: Worksheet, header: list[str], rows: list[list[Any]], formats: dict[int, str]
) -> None:
    sheet.append(header)
    for index in range(1, len(header) + 1):
        cell = sheet.cell(row=sheet.max_row, column=index)
        cell.font, cell.fill, cell.alignment = HEADER, HEADER_FILL, WRAP
    for values in rows:
        sheet.append(values)
        for column, fmt in formats.items():
            sheet.cell(row=sheet.max_row, column=column).number_format = fmt


def _tasks_sheet(
    workbook: Workbook, tasks: list[Task], reports: list[Report], summary: Summary, _: Any
) -> None:
    latest = {r.subject: r for r in reports}  # the last version of each organisation's report
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    percents: dict[str, list[float]] = defaultdict(list)
    for report in latest.values():
        for qid, entry in report.answers.items():
            item, _sep, sub = qid.partition(".")
            if not item.startswith("t") or not isinstance(entry, dict):
                continue
            if sub == "status" and entry.get("v"):
                counts[item][entry["v"]] += 1
            elif sub == "percent" and entry.get("v") is not None:
                percents[item].append(float(entry["v"]))
    sheet = _sheet(
        workbook,
        _("PL1 Tasks"),
        _("Appendix 1: city-level tasks — reported for {period}").format(
            period=summary.period.label()
        ),
        [
            (_("No."), 6),
            (_("Task"), 60),
            (_("Lead"), 30),
            (_("Partners"), 40),
            (_("Due (plan)"), 22),
            (_("Done"), 10),
            (_("In progress"), 12),
            (_("Not started"), 12),
            (_("Average progress"), 12),
        ],
    )
    for task in tasks:
        key = f"t{task.number}"
        average = sum(percents[key]) / len(percents[key]) if percents[key] else None
        sheet.append(
            [
                task.number,
                task.title,
                task.lead_text,
                task.partners_text,
                task.due_text,
                counts[key].get("done", 0),
                counts[key].get("in_progress", 0),
                counts[key].get("not_started", 0),
                average,
            ]
        )
    _finish(sheet, {9: PERCENT})


def _answer_columns(form: Form) -> list[tuple[str, int]]:
    """The headers and widths of the form's answer columns, in its order."""
    return [(q.column.get(LOCALE), q.column.width) for q in form.columns if q.column]


def _answer_cells(form: Form, answers: dict[str, Answer]) -> list[Any]:
    """The cluster's latest answers in the form's columns: percentages and numbers as numbers,
    dates as dates, anything else as the person reads it."""
    return [_cell(q, answers.get(q.id)) for q in form.columns]


def _cell(question: Question, answer: Answer | None) -> Any:
    if answer is None:
        return None
    if question.type in ("percent", "number"):
        return _num(answer.value)
    if question.type == "date":
        return _day(answer.value)
    return display(question, answer.value, LOCALE) if answer.value is not None else None


def _answer_formats(form: Form, first: int) -> dict[int, str]:
    """The number formats of the answer columns, the first at column index `first`."""
    return {first + i: FORMATS[q.type] for i, q in enumerate(form.columns) if q.type in FORMATS}


def _of_form(clusters: list[Cluster], form: Form) -> list[Cluster]:
    return [c for c in clusters if ClusterKind(c.kind).form == form.form]


def _filed(slot: Any, calendar: Calendar, _: Any) -> list[Any]:
    if slot is None:
        return [_("no reporter invited"), None, None]
    if not slot.filled:
        return [_("missing"), None, None]
    when = _local(slot.submitted_at, calendar)
    on_time = _("Yes") if slot.on_time else _("No")
    return [slot.report or _("on paper"), when, on_time]


def _cluster_columns(_: Any) -> list[tuple[str, int]]:
    return [
        (_("No."), 6),
        (_("Code"), 18),
        (_("Cluster"), 36),
        (_("District"), 20),
        (_("Investor"), 32),
    ]


def _cluster_cells(c: Cluster) -> list[Any]:
    return [
        c.number,
        c.code,
        c.name,
        c.district.name if c.district else None,
        c.investor.name if c.investor else None,
    ]


def _filed_columns(_: Any) -> list[tuple[str, int]]:
    return [(_("Report of the period"), 18), (_("Submitted"), 18), (_("On time"), 10)]


def _operating_sheet(
    workbook: Workbook,
    clusters: list[Cluster],
    summary: Summary,
    slots: dict[Subject, Slot],
    calendar: Calendar,
    _: Any,
) -> None:
    form = summary.forms["operating"]
    plan = [*_cluster_columns(_), (_("Occupancy in the plan"), 12)]
    answers = _answer_columns(form)
    sheet = _sheet(
        workbook,
        _("PL2 Operating"),
        _("Appendix 2: operating clusters — values reported up to {period}").format(
            period=summary.period.label()
        ),
        [*plan, *answers, *_filed_columns(_)],
    )
    for c in _of_form(clusters, form):
        sheet.append(
            [
                *_cluster_cells(c),
                float(c.occupancy_rate) if c.occupancy_rate is not None else None,
                *_answer_cells(form, summary.answers.get(c.code, {})),
                *_filed(slots.get(Subject.cluster(c.code)), calendar, _),
            ]
        )
    submitted = len(plan) + len(answers) + 2
    formats = {len(plan): PERCENT, **_answer_formats(form, len(plan) + 1)}
    _finish(sheet, {**formats, submitted: "DD/MM/YYYY HH:MM"})


def _founded_sheet(
    workbook: Workbook,
    clusters: list[Cluster],
    summary: Summary,
    slots: dict[Subject, Slot],
    calendar: Calendar,
    now: datetime,
    _: Any,
) -> None:
    form = summary.forms["founded"]
    plan = [
        *_cluster_columns(_),
        (_("Planned groundbreaking"), 12),
        (_("Planned completion"), 12),
    ]
    answers = _answer_columns(form)
    sheet = _sheet(
        workbook,
        _("PL3 Founded 2018-2020"),
        _("Appendix 3: clusters founded 2018–2020 — values reported up to {period}").format(
            period=summary.period.label()
        ),
        [
            *plan,
            *answers,
            (_("Next step"), 40),
            (_("Late against the plan"), 10),
            *_filed_columns(_),
        ],
    )
    local_now = now.astimezone(calendar.zone)
    for c in _of_form(clusters, form):
        a = summary.answers.get(c.code, {})
        step = next_step(c, list(c.steps), a, local_now, form)
        next_text = None
        if step is not None:
            owner = step.step.owner.name if step.step.owner else ""
            next_text = f"{step.step.text} — {owner}".strip(" —")
        sheet.append(
            [
                *_cluster_cells(c),
                i18n.month(c.planned_groundbreaking) if c.planned_groundbreaking else None,
                i18n.quarter(c.planned_completion) if c.planned_completion else None,
                *_answer_cells(form, a),
                next_text,
                (_("Yes") if step.late else _("No")) if step is not None else None,
                *_filed(slots.get(Subject.cluster(c.code)), calendar, _),
            ]
        )
    submitted = len(plan) + len(answers) + 4
    _finish(sheet, {**_answer_formats(form, len(plan) + 1), submitted: "DD/MM/YYYY HH:MM"})
