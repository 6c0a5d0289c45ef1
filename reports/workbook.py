"""The month's consolidated workbook, the appendices of the report sent upward, ready to print:
a summary sheet with the reporting rate and the plan's targets, one sheet per appendix of the
plan with this period's values beside the plan's columns (the clusters' sheets end with the
review state of the period's report: handlers/review.py; from July 2025 they say each cluster's
commune or ward, grouped still by the plan's district), and the missing reports.

Every sheet is set up for A4 landscape, one page wide (the summary: one page), its header row
repeated on each page, page numbers in the footer, in Times New Roman, under a title block
("Phụ lục … kèm theo Báo cáo số …/BC-SCT"). Columns are wide enough for their headers' words
and rows tall enough for their wrapped text (estimated from the font's widths, see `lines`);
clusters are grouped as the plan's appendices group them, numbered 1…n, and totalled. Numbers
are numbers, percentages fractions under a % format, an answer not given an empty cell; no
code or slug of the bot is printed. The answers shown, their order and headers are the forms'
data (`column:` in store/forms/*.yaml).

`build` reads the month (`reports.month.gather`) and writes the file in a worker thread;
`render` writes it from facts already read."""

from __future__ import annotations

import asyncio
import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.ext.asyncio import AsyncSession

from domain import i18n
from domain.answers import display
from domain.calendar import Calendar, Period
from domain.forms import Form, Question
from domain.roles import ClusterKind
from domain.slots import Review
from reports.month import (
    GROUP_NAMES,
    REPORTER_NAMES,
    ClusterFacts,
    Filed,
    Month,
    assessment,
    gather,
)
from reports.plan import GOVERNING_BODY, NO_PLAN, OFFICE, OFFICE_NAME, SYMBOL
from reports.summary import Summary, TargetRow

__all__ = ["REPORTER_NAMES", "build", "lines", "render"]

LOCALE = "vi"  # the language of the workbook sent upward
FONT = "Times New Roman"
SIZE = 11  # the tables
TITLE_SIZE = 12
BODY = Font(name=FONT, size=SIZE)
BOLD = Font(name=FONT, size=SIZE, bold=True)
ITALIC = Font(name=FONT, size=SIZE, italic=True)
BOLD_ITALIC = Font(name=FONT, size=SIZE, bold=True, italic=True)
TITLE = Font(name=FONT, size=TITLE_SIZE, bold=True)
TITLE_PLAIN = Font(name=FONT, size=TITLE_SIZE)
TITLE_ITALIC = Font(name=FONT, size=TITLE_SIZE, italic=True)
HEADER_FILL = PatternFill("solid", fgColor="D9D9D9")  # light grey: prints on any printer
GROUP_FILL = PatternFill("solid", fgColor="F2F2F2")
THIN = Side(style="thin", color="000000")
GRID = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAP = Alignment(wrap_text=True, vertical="top")
WRAP_CENTER = Alignment(wrap_text=True, vertical="top", horizontal="center")
HEADER_ALIGN = Alignment(wrap_text=True, vertical="center", horizontal="center")
TITLE_ALIGN = Alignment(wrap_text=True, vertical="center", horizontal="center")
PERCENT = "0.0# %"  # a fraction shown as a percentage: 0.6845 → 68,45 %
PERCENT_PLAIN = "0 %"
INTEGER = "0"
DATE = "DD/MM/YYYY"
DATETIME = "DD/MM/YYYY HH:MM"
FORMATS = {"percent": PERCENT, "number": "#,##0.##", "date": DATE}  # an answer's, by type
# The title block: issuing body (rows 1–2), the appendix's name (4), its title (5) and what it
# is attached to (6); the table's header on row 8, repeated on every printed page.
HEADER_ROW = 8
FIRST_ROW = HEADER_ROW + 1
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
GROUP_MARKS = ("A", "B", "C", "D")
# Since 1 July 2025 Hà Nội has no district level: from that period the clusters' sheets say each
# cluster's commune or ward beside its name (still grouped by the plan's district); the months
# before keep their columns as they were.
COMMUNES_FROM = Period(2025, 7)
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")


# --- measuring text ------------------------------------------------------------------------
# Times New Roman's advance widths, in ems, by kind of character: enough to decide how many
# lines a cell's text wraps to (slightly generous, so that a row is never too short).


@lru_cache(maxsize=4096)
def _em(ch: str) -> float:
    if unicodedata.combining(ch):
        return 0.0
    if ch == " ":
        return 0.25
    if ch.isdigit():
        return 0.5
    if ch.isupper():
        return 0.72
    if ch in "mwMW%":
        return 0.8
    if ch.isalpha():
        return 0.5
    if ch in ".,:;'!|il":
        return 0.28
    if ch in "()[]-/–":
        return 0.36
    return 0.56


@lru_cache(maxsize=65536)
def text_points(text: str, size: float, bold: bool = False) -> float:
    """The estimated width of one line of `text` in points."""
    width = sum(_em(ch) for ch in unicodedata.normalize("NFC", text)) * size
    return width * (1.08 if bold else 1.0)


def column_points(width: float) -> float:
    """The inside width of a column `width` characters wide (the spreadsheet's unit: the
    default font's digit, 7 px), in points, less the cell's padding."""
    return (width * 7 + 5) * 0.75 - 4


@lru_cache(maxsize=8192)
def lines(text: str, width: float, size: float, bold: bool = False) -> int:
    """How many lines `text` wraps to in a column `width` characters wide (remembered: the
    same names and words come back on many rows)."""
    room = column_points(width)
    count = 0
    for paragraph in str(text).split("\n"):
        count += 1
        used = 0.0
        for word in paragraph.split():
            need = text_points(word, size, bold)
            space = text_points(" ", size, bold) if used else 0.0
            if used and used + space + need <= room:
                used += space + need
                continue
            if used:
                count += 1
            if need > room:  # a word longer than the column breaks over lines
                count += math.ceil(need / room) - 1
                used = need - (math.ceil(need / room) - 1) * room
            else:
                used = need
    return max(count, 1)


def _needed_width(text: str, size: float, bold: bool) -> float:
    """The narrowest column (in characters) that holds the text's longest word."""
    longest = max((text_points(w, size, bold) for w in str(text).split()), default=0.0)
    return math.ceil(((longest + 4) / 0.75 - 5) / 7 * 10) / 10


def _height(n: int, size: float) -> float:
    return round(n * size * 1.2 + 3, 1)


# --- the sheets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Col:
    header: str
    width: float
    fmt: str | None = None  # the number format of its values
    total: Callable[[list[Any]], float | int | None] | None = None  # its "Tổng cộng" cell
    center: bool = False


def count_of(*values: Any) -> Callable[[list[Any]], int]:
    wanted = set(values)
    return lambda cells: sum(1 for v in cells if v in wanted)


def sum_of(cells: list[Any]) -> float | int:
    return sum(v for v in cells if isinstance(v, int | float))


@dataclass(frozen=True)
class Group:
    label: str
    level: int  # 0: A/B, 1: I/II, 2: a district (the plan's italic rows)
    mark: str = ""


def _named_styles(workbook: Workbook) -> None:
    """The tables' cell styles, registered once: a cell takes one by name, which is much
    cheaper than giving it a font, border and alignment each (a thousand clusters make some
    thirty thousand cells)."""
    edges = {
        "first": Border(left=THIN, top=THIN, bottom=THIN),
        "middle": Border(top=THIN, bottom=THIN),
        "last": Border(right=THIN, top=THIN, bottom=THIN),
    }
    label = Alignment(vertical="center")  # not wrapped: the name runs over the empty cells
    styles = {
        "CCN body": (BODY, WRAP, GRID, None),
        "CCN body centred": (BODY, WRAP_CENTER, GRID, None),
        "CCN header": (BOLD, HEADER_ALIGN, GRID, HEADER_FILL),
        "CCN total": (BOLD, WRAP, GRID, GROUP_FILL),
        "CCN total centred": (BOLD, WRAP_CENTER, GRID, GROUP_FILL),
    }
    for level, font in enumerate((BOLD, BOLD_ITALIC, ITALIC)):
        fill = GROUP_FILL if level == 0 else None
        styles[f"CCN group {level} mark"] = (font, WRAP_CENTER, GRID, fill)
        for edge, border in edges.items():
            styles[f"CCN group {level} {edge}"] = (font, label, border, fill)
    for name, (font, alignment, border, fill) in styles.items():
        style = NamedStyle(name=name, font=font, alignment=alignment, border=border)
        if fill is not None:
            style.fill = fill
        workbook.add_named_style(style)


class Sheet:
    """One printed table under the title block: group rows, numbered rows and a total."""

    def __init__(
        self,
        workbook: Workbook,
        name: str,
        appendix: str,
        title: str,
        columns: Sequence[Col],
        attached: str,
        *,
        frozen: int = 2,
    ) -> None:
        self.ws: Worksheet = workbook.create_sheet(name)
        self.columns = list(columns)
        self.widths: list[float] = []
        for index, col in enumerate(self.columns, start=1):
            width = max(col.width, _needed_width(col.header, SIZE, True))
            self.widths.append(width)
            self.ws.column_dimensions[get_column_letter(index)].width = width
        self.data: list[list[Any]] = []  # the numbered rows, for the total
        self.number = 0
        self.row = HEADER_ROW  # the last row written
        _title_block(self.ws, self.widths, appendix, title, attached)
        for index, col in enumerate(self.columns, start=1):
            self.ws.cell(row=HEADER_ROW, column=index, value=col.header).style = "CCN header"
        self._fit(HEADER_ROW, [c.header for c in self.columns], bold=True)
        self.ws.freeze_panes = f"{get_column_letter(frozen + 1)}{FIRST_ROW}"
        _print_setup(self.ws, one_page=False)

    def _fit(self, row: int, values: Sequence[Any], bold: bool = False) -> None:
        tallest = 1
        for value, width in zip(values, self.widths, strict=False):
            if isinstance(value, str) and value:
                tallest = max(tallest, lines(value, width, SIZE, bold))
        self.ws.row_dimensions[row].height = _height(tallest, SIZE)

    def group(self, group: Group) -> None:
        """A group's row: its mark under STT, its name running across the rest of the row
        (the plan's rows "A", "I", "Huyện Phú Xuyên")."""
        self.row += 1
        level = min(group.level, 2)
        last = len(self.columns)
        self.ws.cell(self.row, 1, group.mark or None).style = f"CCN group {level} mark"
        self.ws.cell(self.row, 2, group.label).style = f"CCN group {level} first"
        for index in range(3, last + 1):
            edge = "last" if index == last else "middle"
            self.ws.cell(self.row, index).style = f"CCN group {level} {edge}"
        span = sum(self.widths[1:]) + 0.9 * (last - 2)
        n = lines(group.label, span, SIZE, group.level < 2)
        self.ws.row_dimensions[self.row].height = _height(n, SIZE)

    def add(self, values: list[Any]) -> None:
        """A numbered row: STT, then `values` for the other columns."""
        self.number += 1
        self.row += 1
        cells = [self.number, *values]
        self.data.append(cells)
        for index, (value, col) in enumerate(zip(cells, self.columns, strict=True), start=1):
            cell = self.ws.cell(row=self.row, column=index, value=value)
            cell.style = "CCN body centred" if col.center or index == 1 else "CCN body"
            if col.fmt and value is not None and not isinstance(value, str):
                cell.number_format = col.fmt
        self._fit(self.row, cells)

    def total(self, label: str) -> None:
        self.row += 1
        values: list[Any] = [None, label]
        for index, col in enumerate(self.columns[2:], start=2):
            values.append(col.total([r[index] for r in self.data]) if col.total else None)
        for index, (value, col) in enumerate(zip(values, self.columns, strict=True), start=1):
            cell = self.ws.cell(row=self.row, column=index, value=value)
            cell.style = "CCN total centred" if col.center else "CCN total"
            if isinstance(value, int | float):
                cell.number_format = INTEGER if isinstance(value, int) else (col.fmt or INTEGER)
        self._fit(self.row, values, bold=True)
        last = get_column_letter(len(self.columns))
        self.ws.auto_filter.ref = f"A{HEADER_ROW}:{last}{self.row - 1}"


def _title_block(
    ws: Worksheet, widths: Sequence[float], appendix: str, title: str, attached: str
) -> None:
    """The issuing body top left, then the appendix's name, title and what it is attached
    to, centred over the table."""
    _ = i18n.gettext_for(LOCALE)
    last = len(widths)
    body_span = 1
    while body_span < last and sum(widths[:body_span]) < 36:
        body_span += 1
    rows: list[tuple[int, str, Font, int]] = [
        (1, _(GOVERNING_BODY), TITLE_PLAIN, body_span),
        (2, _(OFFICE), TITLE, body_span),
        (4, appendix, TITLE, last),
        (5, title, TITLE, last),
        (6, attached, TITLE_ITALIC, last),
    ]
    for row, text, font, span in rows:
        cell = ws.cell(row=row, column=1, value=text)
        cell.font, cell.alignment = font, TITLE_ALIGN
        if span > 1:
            ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=span)
        n = lines(text, sum(widths[:span]) + 0.9 * (span - 1), TITLE_SIZE, font.b is True)
        ws.row_dimensions[row].height = _height(n, TITLE_SIZE)
    ws.row_dimensions[3].height = 6
    ws.row_dimensions[7].height = 6


def _print_setup(ws: Worksheet, *, one_page: bool) -> None:
    _ = i18n.gettext_for(LOCALE)
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    properties = ws.sheet_properties.pageSetUpPr
    assert properties is not None
    properties.fitToPage = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 1 if one_page else 0  # 0: as many pages tall as it takes
    if not one_page:
        ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    # inches: 1.5 cm left, 1 cm right, 1.5 cm top and bottom (footer 0.8 cm)
    ws.page_margins = PageMargins(
        left=0.59, right=0.39, top=0.59, bottom=0.59, header=0.3, footer=0.3
    )
    ws.print_options.horizontalCentered = True
    footer = ws.oddFooter
    assert footer is not None
    footer.center.text = _("Page &P of &N")
    footer.center.font = f"{FONT},Regular"
    footer.center.size = 10


def _attached(month: Month) -> str:
    _ = i18n.gettext_for(LOCALE)
    return _("(Attached to Report No. …/{symbol} of …/…/{year} of the {office})").format(
        symbol=SYMBOL, year=month.office_deadline.year, office=_(OFFICE_NAME)
    )


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


def _fraction(value: Decimal | float | str | None) -> float | None:
    """A percentage as the fraction a % format shows: 68.45 → 0.6845."""
    if value is None or value == "":
        return None
    return float(Decimal(str(value)) / 100)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


# --- the workbook --------------------------------------------------------------------------


async def build(
    session: AsyncSession, summary: Summary, calendar: Calendar, path: Path, now: datetime
) -> Path:
    """Read the month, then write its workbook in a worker thread."""
    month = await gather(session, summary, calendar, now)
    return await asyncio.to_thread(render, month, path)


def render(month: Month, path: Path) -> Path:
    workbook = Workbook()
    default = workbook.active
    assert default is not None
    workbook.remove(default)
    _named_styles(workbook)
    _summary_sheet(workbook, month)
    _tasks_sheet(workbook, month)
    _operating_sheet(workbook, month)
    _founded_sheet(workbook, month)
    _missing_sheet(workbook, month)
    _text_stays_text(workbook)
    workbook.active = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path


def _rate(r: Any) -> list[Any]:
    return [r.expected, r.received, r.on_time, r.late, round(r.percent / 100, 4)]


def _summary_sheet(workbook: Workbook, month: Month) -> None:
    _ = i18n.gettext_for(LOCALE)
    label = month.period.label()
    widths = [58.0, 16.0, 16.0, 16.0, 16.0, 16.0]
    ws: Worksheet = workbook.create_sheet(_("Summary"))
    for index, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(index)].width = width
    planned = month.plan is not None
    _title_block(
        ws,
        widths,
        _("SUMMARY TABLE"),
        (
            _("Results of the plan and reporting, {period}")
            if planned
            else _("Results and reporting, {period}")
        ).format(period=label),
        _attached(month),
    )
    _print_setup(ws, one_page=True)
    row = HEADER_ROW
    rate_rows: list[list[Any]] = [[_("Whole city"), *_rate(month.total)]]
    rate_rows += [[d or _("City departments"), *_rate(r)] for d, r in month.by_district]
    rate_rows += [[_(REPORTER_NAMES.get(k, k)), *_rate(r)] for k, r in month.by_reporter]
    header = [_("Reporting rate"), _("Expected"), _("Received"), _("On time"), _("Late"), _("Rate")]
    row = _block(ws, row, widths, header, rate_rows, {6: PERCENT}, bold_first=True)
    row += 1
    if not planned:
        _actual_block(ws, row, widths, month)
        ws.freeze_panes = None
        return
    header = [
        _("Target of the plan"),
        _("Plan"),
        _("Actual"),
        _("Clusters meeting it"),
        _("Assessment"),
        _("Note"),
    ]
    rows: list[list[Any]] = []
    formats: dict[tuple[int, int], str] = {}
    for index, t in enumerate(month.targets):
        plan, plan_format, actual, actual_format = _target_cells(t)
        formats[(index, 1)], formats[(index, 2)] = plan_format, actual_format
        note = _("No figure reported") if t.actual is None else (_(t.basis) if t.basis else None)
        rows.append([t.label, plan, actual, t.counted(_), _assessment(t, month), note])
    _block(ws, row, widths, header, rows, {}, cell_formats=formats)
    ws.freeze_panes = None


def _actual_block(ws: Worksheet, row: int, widths: Sequence[float], month: Month) -> None:
    """A year without a plan: its actual figures, said once to have no plan, without a target
    or an assessment column."""
    _ = i18n.gettext_for(LOCALE)
    no_plan = _(NO_PLAN).format(year=month.period.year)
    header = [
        _("Results ({no_plan})").format(no_plan=no_plan),
        _("Actual"),
        _("Clusters meeting it"),
    ]
    rows: list[list[Any]] = []
    formats: dict[tuple[int, int], str] = {}
    for t in month.targets:
        if t.actual is None:
            continue
        _plan, _plan_format, actual, actual_format = _target_cells(t)
        formats[(len(rows), 1)] = actual_format
        rows.append([t.title(_, LOCALE), actual, t.counted(_)])
    _block(ws, row, widths, header, rows, {}, cell_formats=formats)


def _target_cells(t: TargetRow) -> tuple[float | None, str, float | None, str]:
    """The plan and the actual as numbers with the formats that show them as the plan says
    them: `43`, `≥ 20`, `10–15`, `95 %`."""
    if t.unit == "percent":
        return _fraction(t.plan_min), PERCENT_PLAIN, _fraction(t.actual), PERCENT
    plan = float(t.plan_min) if t.plan_min is not None else None
    if t.plan_max is None and t.plan_min is not None:
        plan_format = '"≥ "0'
    elif t.plan_max is not None and t.plan_min != t.plan_max:
        plan_format = f'0"–{i18n.number(t.plan_max, LOCALE)}"'
    else:
        plan_format = INTEGER
    return plan, plan_format, float(t.actual) if t.actual is not None else None, INTEGER


def _assessment(t: TargetRow, month: Month) -> str | None:
    _ = i18n.gettext_for(LOCALE)
    return _(assessment(t, month))


def _block(
    ws: Worksheet,
    row: int,
    widths: Sequence[float],
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    formats: dict[int, str],
    *,
    bold_first: bool = False,
    cell_formats: dict[tuple[int, int], str] | None = None,
) -> int:
    """A small table at `row`; the row after it."""
    for index, text in enumerate(header, start=1):
        cell = ws.cell(row=row, column=index, value=text)
        cell.font, cell.fill, cell.alignment, cell.border = BOLD, HEADER_FILL, HEADER_ALIGN, GRID
    ws.row_dimensions[row].height = _height(
        max(lines(h, w, SIZE, True) for h, w in zip(header, widths, strict=False)), SIZE
    )
    for number, values in enumerate(rows):
        row += 1
        for index, value in enumerate(values, start=1):
            cell = ws.cell(row=row, column=index, value=value)
            cell.font = BOLD if bold_first and number == 0 else BODY
            cell.border = GRID
            cell.alignment = WRAP if index == 1 else WRAP_CENTER
            fmt = (cell_formats or {}).get((number, index - 1)) or formats.get(index)
            if fmt and isinstance(value, int | float):
                cell.number_format = fmt
        tallest = max(
            (lines(v, w, SIZE) for v, w in zip(values, widths, strict=False) if isinstance(v, str)),
            default=1,
        )
        ws.row_dimensions[row].height = _height(tallest, SIZE)
    return row + 1


def _appendix(
    workbook: Workbook, month: Month, number: int, name: str, title: str, columns: Sequence[Col]
) -> Sheet:
    """The sheet of the plan's appendix `number`: `title` for the month (its `{period}`), its
    rows numbered, attached to the office's report."""
    _ = i18n.gettext_for(LOCALE)
    return Sheet(
        workbook,
        name,
        _("APPENDIX {number}").format(number=number),
        title.format(period=month.period.label()),
        [Col(_("No."), 5, center=True), *columns],
        _attached(month),
    )


def _tasks_sheet(workbook: Workbook, month: Month) -> None:
    """Phụ lục 1's tasks, each with how many organisations last reported it done, in progress
    or not started and whether it is late ("Quá hạn từ Quý II/2021", reports/tasks.py); then,
    when the plan's section III gives organisations duties beyond those tasks, the duties."""
    _ = i18n.gettext_for(LOCALE)
    counted = sum_of
    sheet = _appendix(
        workbook,
        month,
        1,
        _("PL1 Tasks"),
        _("City-level tasks of Appendix 1 of the plan — reported for {period}"),
        [
            Col(_("Task"), 56),
            Col(_("Lead"), 24),
            Col(_("Partners"), 34),
            Col(_("Due (plan)"), 16),
            Col(_("Reported done"), 11, INTEGER, counted, center=True),
            Col(_("In progress"), 11, INTEGER, counted, center=True),
            Col(_("Not started"), 11, INTEGER, counted, center=True),
            Col(_("Average progress"), 11, PERCENT, center=True),
            Col(_("Overdue"), 15, total=count_of_text, center=True),
        ],
    )
    if month.duties:
        sheet.group(Group(_("Tasks of Appendix 1"), 0, GROUP_MARKS[0]))
    for task in month.tasks:
        sheet.add(
            [
                task.title,
                task.lead,
                task.partners,
                task.due_text,
                task.done,
                task.in_progress,
                task.not_started,
                _fraction(round(task.average, 2)) if task.average is not None else None,
                task.late_text(month.period, LOCALE),
            ]
        )
    if not month.duties:
        sheet.total(_("Total ({count} tasks)").format(count=len(month.tasks)))
        return
    beyond = _("Duties under section III of the plan, beyond Appendix 1")
    sheet.group(Group(beyond, 0, GROUP_MARKS[1]))
    sheet.number = 0  # the duties are numbered on their own
    for duty in month.duties:
        sheet.add(
            [
                duty.text,
                _("{who} (section {section})").format(who=duty.who, section=duty.section),
                None,
                None,
                duty.done,
                duty.in_progress,
                duty.not_started,
                _fraction(round(duty.average, 2)) if duty.average is not None else None,
                None,
            ]
        )
    sheet.total(
        _("Total ({count} tasks, {duties} duties)").format(
            count=len(month.tasks), duties=len(month.duties)
        )
    )


def count_of_text(cells: list[Any]) -> int:
    """How many cells say something (a late task's words)."""
    return sum(1 for v in cells if isinstance(v, str) and v)


def _answer_columns(form: Form) -> list[Col]:
    """The form's answer columns, in its order: headers and widths from its file; yes/no
    answers counted and numbers summed in the total."""
    _ = i18n.gettext_for(LOCALE)
    out = []
    for q in form.columns:
        assert q.column is not None
        total: Callable[[list[Any]], float | int | None] | None = None
        if q.type == "yesno":
            total = count_of(_("Yes"))
        elif q.type == "number":
            total = sum_of
        out.append(
            Col(
                q.column.get(LOCALE),
                q.column.width,
                FORMATS.get(q.type),
                total,
                center=q.type in ("yesno", "percent", "number", "date"),
            )
        )
    return out


def _answer_cells(form: Form, c: ClusterFacts) -> list[Any]:
    """The cluster's latest answers in the form's columns: a percentage as a fraction, a
    number as a number, a date as a date, anything else as the person reads it; nothing for a
    question not answered."""
    return [_cell(q, c.now.get(q.id)) for q in form.columns]


def _cell(question: Question, value: str | None) -> Any:
    if value is None or value == "":
        return None
    if question.type == "percent":
        return _fraction(value)
    if question.type == "number":
        return _num(value)
    if question.type == "date":
        return _day(value)
    return display(question, value, LOCALE)


def _filed_columns() -> list[Col]:
    _ = i18n.gettext_for(LOCALE)
    received = count_of(_("Received"), _("on paper"))
    return [
        Col(_("Report of the period"), 11, total=received, center=True),
        Col(_("Submitted"), 12, DATE, center=True),
        Col(_("On time"), 8, total=count_of(_("Yes")), center=True),
    ]


# The review of the month's report (domain.slots.Review), in the workbook's words.
REVIEW_NAMES = {
    Review.NEW: i18n.N_("not yet reviewed"),
    Review.ACCEPTED: i18n.N_("accepted"),
    Review.NEEDS_CHANGES: i18n.N_("needs changes"),
}


def _review_column() -> Col:
    _ = i18n.gettext_for(LOCALE)
    return Col(_("Review"), 10, total=count_of(_("accepted")), center=True)


def _reviews(month: Month) -> dict[str, Review | None]:
    """Each cluster's review state of the month's report, by code (None: no report)."""
    return {s.subject.code: s.review for s in month.slots if s.subject.code is not None}


def _review_cell(state: Review | None) -> str | None:
    _ = i18n.gettext_for(LOCALE)
    return _(REVIEW_NAMES[state]) if state is not None else None


def _filed_cells(filed: Filed) -> list[Any]:
    _ = i18n.gettext_for(LOCALE)
    state = {
        "unassigned": _("no reporter invited"),
        "missing": _("missing"),
        "received": _("Received"),
        "paper": _("on paper"),
    }[filed.state]
    on_time = None if filed.on_time is None else (_("Yes") if filed.on_time else _("No"))
    return [state, filed.submitted, on_time]


def _grouped(
    sheet: Sheet,
    clusters: list[ClusterFacts],
    keys: Callable[[ClusterFacts], list[tuple[str, str]]],
    cells: Callable[[ClusterFacts], list[Any]],
) -> None:
    """The clusters under their group rows; `keys`: a cluster's groups, outermost first, each
    (mark, label); the groups keep the order of the clusters' first appearance."""
    paths = [tuple(keys(c)) for c in clusters]
    order: dict[tuple[tuple[str, str], ...], int] = {}
    for path in paths:
        for depth in range(1, len(path) + 1):
            order.setdefault(path[:depth], len(order))
    ranked = sorted(
        range(len(clusters)),
        key=lambda i: [order[paths[i][:d]] for d in range(1, len(paths[i]) + 1)],
    )
    shown: tuple[tuple[str, str], ...] = ()
    for i in ranked:
        path = paths[i]
        for depth in range(1, len(path) + 1):
            if shown[:depth] != path[:depth]:
                mark, label = path[depth - 1]
                level = 2 if depth == len(path) else depth - 1
                sheet.group(Group(label, level, mark))
        shown = path
        sheet.add(cells(clusters[i]))


def _cluster_count(label: str, count: int) -> str:
    _ = i18n.gettext_for(LOCALE)
    return _("{group} ({count} clusters)").format(group=label, count=count)


def _district(c: ClusterFacts) -> str:
    _ = i18n.gettext_for(LOCALE)
    return c.district or _("District not given")


def _commune_columns(month: Month) -> list[Col]:
    """From July 2025 the column of each cluster's commune or ward; none before."""
    _ = i18n.gettext_for(LOCALE)
    if month.period < COMMUNES_FROM:
        return []
    return [Col(_("Commune or ward (from 1/7/2025)"), 16)]


def _commune_cells(month: Month, c: ClusterFacts) -> list[Any]:
    """The cluster's commune or ward in that column (empty where not entered)."""
    return [] if month.period < COMMUNES_FROM else [c.commune or None]


def _operating_sheet(workbook: Workbook, month: Month) -> None:
    _ = i18n.gettext_for(LOCALE)
    form = month.forms["operating"]
    clusters = [c for c in month.clusters if c.form == form.form]
    sheet = _appendix(
        workbook,
        month,
        2,
        _("PL2 Operating"),
        _("Operating clusters (Appendix 2 of the plan) — values reported up to {period}"),
        [
            Col(_("Cluster"), 24),
            *_commune_columns(month),
            Col(_("Investor"), 22),
            Col(_("Occupancy in the plan"), 10, PERCENT, center=True),
            *_answer_columns(form),
            *_filed_columns(),
            _review_column(),
        ],
    )
    reviewed = _reviews(month)
    kinds = {k: n for n, k in enumerate(ClusterKind)}
    sizes = {k: sum(1 for c in clusters if c.kind == k) for k in ClusterKind}

    def keys(c: ClusterFacts) -> list[tuple[str, str]]:
        top = (GROUP_MARKS[kinds[c.kind]], _cluster_count(_(GROUP_NAMES[c.kind]), sizes[c.kind]))
        path = [top]
        if c.kind == ClusterKind.OPERATING_COMPLETE:  # the plan's A.I and A.II
            path.append(
                ("I", _("Clusters whose investor is the district"))
                if c.run_by_district
                else ("II", _("Clusters whose investor is a company"))
            )
        return [*path, ("", _district(c))]

    _grouped(
        sheet,
        clusters,
        keys,
        lambda c: [
            c.name,
            *_commune_cells(month, c),
            c.investor or None,
            _fraction(c.occupancy_plan),
            *_answer_cells(form, c),
            *_filed_cells(c.filed),
            _review_cell(reviewed.get(c.code)),
        ],
    )
    sheet.total(_cluster_count(_("Total"), len(clusters)))


def _founded_sheet(workbook: Workbook, month: Month) -> None:
    _ = i18n.gettext_for(LOCALE)
    form = month.forms["founded"]
    clusters = [c for c in month.clusters if c.form == form.form]
    sheet = _appendix(
        workbook,
        month,
        3,
        _("PL3 Founded 2018-2020"),
        _(
            "Clusters founded 2018–2020 (Appendix 3 of the plan): steps to groundbreaking — "
            "values reported up to {period}"
        ),
        [
            Col(_("Cluster"), 24),
            *_commune_columns(month),
            Col(_("Investor"), 22),
            Col(_("Planned groundbreaking"), 9, center=True),
            Col(_("Planned completion"), 9, center=True),
            *_answer_columns(form),
            Col(_("Next step"), 28),
            Col(_("Late against the plan"), 8, total=count_of(_("Yes")), center=True),
            *_filed_columns(),
            _review_column(),
        ],
    )
    reviewed = _reviews(month)
    sizes = {k: sum(1 for c in clusters if c.kind == k) for k in ClusterKind}
    ordinal = {k: n for n, k in enumerate(k for k in ClusterKind if sizes[k])}

    def keys(c: ClusterFacts) -> list[tuple[str, str]]:
        district = ("", _district(c))
        if len(ordinal) < 2:  # the plan's Phụ lục 3: only districts
            return [district]
        top = _cluster_count(_(GROUP_NAMES[c.kind]), sizes[c.kind])
        return [(ROMAN[ordinal[c.kind]], top), district]

    def cells(c: ClusterFacts) -> list[Any]:
        step = None
        if c.next_step:
            step = f"{c.next_step} — {c.next_owner}" if c.next_owner else c.next_step
        return [
            c.name,
            *_commune_cells(month, c),
            c.investor or None,
            i18n.month(c.planned_groundbreaking) if c.planned_groundbreaking else None,
            i18n.quarter(c.planned_completion) if c.planned_completion else None,
            *_answer_cells(form, c),
            step,
            (_("Yes") if c.late else _("No")) if c.next_step else None,
            *_filed_cells(c.filed),
            _review_cell(reviewed.get(c.code)),
        ]

    _grouped(sheet, clusters, keys, cells)
    sheet.total(_cluster_count(_("Total"), len(clusters)))


def _missing_sheet(workbook: Workbook, month: Month) -> None:
    _ = i18n.gettext_for(LOCALE)
    sheet = _appendix(
        workbook,
        month,
        4,
        _("Missing reports"),
        _("Reports not received for {period}"),
        [
            Col(_("Cluster or organisation"), 46),
            Col(_("Reporter"), 24),
            Col(_("Who owes it"), 34),
            Col(_("Last reminded"), 18, DATETIME, center=True),
        ],
    )
    groups: dict[str, list[Any]] = {}
    for row in month.missing:
        groups.setdefault(row.slot.district or _("City departments"), []).append(row)
    for name, rows in groups.items():
        sheet.group(Group(name, 2))
        for row in rows:
            reminded = row.last_reminded  # local time already (reports.month)
            sheet.add(
                [
                    row.slot.title,
                    _(REPORTER_NAMES.get(row.slot.reporter, row.slot.reporter)),
                    ", ".join(row.people),
                    reminded,
                ]
            )
    sheet.total(_("Total ({count} reports)").format(count=len(month.missing)))
