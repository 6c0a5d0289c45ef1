"""Word documents (DOCX: a type every messenger takes, Zalo included).

`report_document` is the report Sở Công Thương sends upward each month, in the layout of Nghị
định 30/2020/NĐ-CP (Phụ lục I: the administrative report): the issuing body beside the national
motto, the number left blank to fill when it is registered, place and date, the title naming
the plan, a body written from the month's figures, the recipients and the signer's title, in
Times New Roman on A4 with the decree's margins. Nothing is invented: a figure the reports do
not give is said to be missing. Its tables are the workbook (reports/workbook.py), its
appendices."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from docx import Document
from docx.document import Document as DocumentObject
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Mm, Pt
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph
from sqlalchemy.ext.asyncio import AsyncSession

from domain import i18n
from domain.answers import display
from domain.calendar import Calendar, Period
from domain.forms import Question
from domain.i18n import N_, Gettext
from domain.text import fold
from reports.month import (
    GROUP_NAMES,
    KIND_ORDER,
    REPORTER_NAMES,
    TOPICS,
    ClusterFacts,
    Month,
    Remark,
    assessment,
    done,
    gather,
)
from reports.plan import (
    GOVERNING_BODY,
    NO_PLAN,
    OFFICE,
    OFFICE_NAME,
    PLACE,
    RECIPIENTS,
    SIGNER,
    SYMBOL,
    Plan,
)
from reports.summary import Summary, TargetRow
from reports.tasks import DutyFacts, TaskFacts, short

FONT = "Times New Roman"
BODY = 13  # Nghị định 30: the body 13–14 pt
TITLE = 14
HEAD = 12  # the issuing body's and the motto's first line, 12–13 pt
RECIPIENTS_HEAD, RECIPIENTS_ITEM = 12, 11  # "Nơi nhận": 12 pt bold italic, its lines 11 pt
# A4 and the decree's margins: top and bottom 20–25 mm, left 30–35 mm, right 15–20 mm.
PAGE = (Mm(210), Mm(297))
MARGINS = {"top": Mm(20), "bottom": Mm(20), "left": Mm(30), "right": Mm(15)}
TEXT_WIDTH = 16.5  # cm: 210 − 30 − 15 mm
INDENT = Cm(1)
# What the month's figures are said about, per topic (reports.month.TOPICS).
TOPIC_DONE = {
    "clearance": N_(
        "Cumulative: {done} of {count} clusters in the registry have finished site clearance."
    ),
    "infrastructure": N_(
        "Cumulative: {done} of {count} clusters in the registry have finished infrastructure."
    ),
    "wastewater": N_(
        "Cumulative: {done} of {count} clusters in the registry have a wastewater plant "
        "operating to standard."
    ),
}


# --- the page ------------------------------------------------------------------------------


def _fonts(style: Any) -> None:
    """Times New Roman for every script of a style (Vietnamese included)."""
    fonts = style.element.get_or_add_rPr().get_or_add_rFonts()
    for attribute in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attribute), FONT)


def _setup(document: DocumentObject) -> None:
    normal = document.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(BODY)
    _fonts(normal)
    fmt = normal.paragraph_format
    fmt.space_before, fmt.space_after, fmt.line_spacing = Pt(0), Pt(6), 1.1
    _fonts(document.styles["Table Grid"])
    for section in document.sections:
        section.page_width, section.page_height = PAGE
        section.top_margin, section.bottom_margin = MARGINS["top"], MARGINS["bottom"]
        section.left_margin, section.right_margin = MARGINS["left"], MARGINS["right"]
        section.header_distance, section.footer_distance = Mm(10), Mm(10)
        # the page number: top centre, from the second page on (Nghị định 30, Phụ lục I)
        section.different_first_page_header_footer = True
        number = section.header.paragraphs[0]
        number.alignment = WD_ALIGN_PARAGRAPH.CENTER
        field = OxmlElement("w:fldSimple")
        field.set(qn("w:instr"), "PAGE")
        run = OxmlElement("w:r")
        text = OxmlElement("w:t")
        text.text = "2"
        run.append(text)
        field.append(run)
        number._p.append(field)


def _para(
    container: DocumentObject | _Cell,
    text: str = "",
    *,
    bold: bool = False,
    italic: bool = False,
    size: float | None = None,
    align: int | None = WD_ALIGN_PARAGRAPH.JUSTIFY,
    indent: bool = True,
    after: float = 6,
) -> Paragraph:
    paragraph = container.add_paragraph()
    fmt = paragraph.paragraph_format
    fmt.alignment = align
    fmt.first_line_indent = INDENT if indent else Cm(0)
    fmt.space_after = Pt(after)
    if text:
        _run(paragraph, text, bold=bold, italic=italic, size=size)
    return paragraph


def _run(
    paragraph: Paragraph,
    text: str,
    *,
    bold: bool = False,
    italic: bool = False,
    size: float | None = None,
) -> None:
    run = paragraph.add_run(text)
    run.bold, run.italic = bold or None, italic or None
    if size is not None:
        run.font.size = Pt(size)


def _rule(container: DocumentObject | _Cell, length: float, width: float) -> None:
    """A short line under a heading line (the decree's "đường kẻ ngang, nét liền"), `length`
    cm long, centred in a space `width` cm wide."""
    paragraph = container.add_paragraph()
    fmt = paragraph.paragraph_format
    side = Cm(max((width - length) / 2, 0))
    fmt.left_indent, fmt.right_indent = side, side
    fmt.space_before, fmt.space_after, fmt.line_spacing = Pt(0), Pt(4), Pt(2)
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for key, value in (("w:val", "single"), ("w:sz", "6"), ("w:space", "1"), ("w:color", "auto")):
        bottom.set(qn(key), value)
    borders.append(bottom)
    p_pr = paragraph._p.get_or_add_pPr()
    p_pr.insert_element_before(
        borders,
        "w:shd",
        "w:tabs",
        "w:suppressAutoHyphens",
        "w:spacing",
        "w:ind",
        "w:jc",
        "w:rPr",
        "w:sectPr",
    )


def _centred(
    cell: _Cell, text: str, *, size: float, bold: bool = False, italic: bool = False
) -> None:
    paragraph = cell.paragraphs[0] if not cell.paragraphs[0].text else cell.add_paragraph()
    fmt = paragraph.paragraph_format
    fmt.alignment = WD_ALIGN_PARAGRAPH.CENTER
    fmt.first_line_indent, fmt.space_after = Cm(0), Pt(0)
    _run(paragraph, text, bold=bold, italic=italic, size=size)


def _grid(
    document: DocumentObject,
    widths: Sequence[float],
    rows: int,
    *,
    borders: bool,
    header: bool = False,
) -> list[list[_Cell]]:
    """A table of `rows` rows, its columns `widths` cm wide; its cells, row by row. `header`:
    the first row is repeated at the top of each page the table runs onto."""
    table: Table = document.add_table(rows=rows, cols=len(widths))
    if borders:
        table.style = document.styles["Table Grid"]
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    for column, width in zip(table.columns, widths, strict=True):
        column.width = Cm(width)
    out = []
    for row in table.rows:
        cells = list(row.cells)
        for cell, width in zip(cells, widths, strict=True):
            cell.width = Cm(width)
        out.append(cells)
    if header and rows:
        repeat = OxmlElement("w:tblHeader")
        repeat.set(qn("w:val"), "true")
        table.rows[0]._tr.get_or_add_trPr().append(repeat)
    return out


# --- the document --------------------------------------------------------------------------


def _heading_block(document: DocumentObject, month: Month, _: Gettext) -> None:
    """Issuing body | national motto; number | place and date (a table without borders)."""
    widths = (6.0, 10.5)
    (left, right), (number, place) = _grid(document, widths, 2, borders=False)
    _centred(left, _(GOVERNING_BODY), size=HEAD)
    _centred(left, _(OFFICE), size=HEAD, bold=True)
    _rule(left, 2.2, widths[0])
    _centred(right, _("SOCIALIST REPUBLIC OF VIETNAM"), size=HEAD, bold=True)
    _centred(right, _("Independence - Freedom - Happiness"), size=BODY, bold=True)
    _rule(right, 6.0, widths[1])
    _centred(number, _("No.: …/{symbol}").format(symbol=SYMBOL), size=BODY)
    _centred(
        place,
        _("{place}, day … month … year {year}").format(
            place=_(PLACE), year=month.office_deadline.year
        ),
        size=BODY,
        italic=True,
    )


def _month(period: Period) -> str:
    return f"{period.month}/{period.year}"


def _plan(plan: Plan, _: Gettext) -> str:
    return _("Plan No. {number} of {date}").format(number=plan.number, date=plan.signed_text())


def _title(document: DocumentObject, month: Month, _: Gettext) -> None:
    """The title cites the plan of the month's year; a year without one is said to have none,
    once, in the opening sentence."""
    plan = month.plan
    if plan is None:
        title = _(
            "Results of the management, investment and development of industrial clusters in "
            "Hà Nội, month {period}"
        ).format(period=_month(month.period))
        opening = _("The {office} reports the results of {period} ({no_plan}) as follows:").format(
            office=_(OFFICE_NAME),
            period=_month(month.period),
            no_plan=_(NO_PLAN).format(year=month.period.year),
        )
    else:
        title = _("Results of {plan} of {issuer} {subject}, month {period}").format(
            plan=_plan(plan, _),
            issuer=_(plan.issuer),
            subject=_(plan.subject).format(year=plan.year),
            period=_month(month.period),
        )
        opening = _(
            "Carrying out {plan} of {issuer}, the {office} reports the results of {period} "
            "as follows:"
        ).format(
            plan=_plan(plan, _),
            issuer=_(plan.issuer),
            office=_(OFFICE_NAME),
            period=_month(month.period),
        )
    _para(document, after=6)
    _para(
        document,
        _("REPORT"),
        bold=True,
        size=TITLE,
        align=WD_ALIGN_PARAGRAPH.CENTER,
        indent=False,
        after=0,
    )
    _para(
        document,
        title,
        bold=True,
        size=TITLE,
        align=WD_ALIGN_PARAGRAPH.CENTER,
        indent=False,
        after=0,
    )
    _rule(document, 4.0, TEXT_WIDTH)
    _para(document, opening)


def _heading(document: DocumentObject, text: str) -> None:
    _para(document, text, bold=True)


def _names(items: Iterable[str]) -> str:
    return "; ".join(items)


def _reporting(document: DocumentObject, month: Month, _: Gettext, locale: str) -> None:
    _heading(document, _("I. REPORTING BY THE UNITS"))
    t = month.total
    period = _month(month.period)
    if not t.expected:
        _para(
            document,
            _("No unit was due to report through the bot for {period}.").format(period=period),
        )
        return
    _para(
        document,
        _(
            "For {period}, {expected} units (departments, district People's Committees and "
            "cluster investors) were due to report under the plan; {received} reports were "
            "received ({percent}): {on_time} on time, {late} late."
        ).format(
            period=period,
            expected=t.expected,
            received=t.received,
            percent=i18n.percent(round(t.percent, 1), locale),
            on_time=t.on_time,
            late=t.late,
        ),
    )
    for kind, r in month.by_reporter:
        _para(
            document,
            "- "
            + _("{group}: {received}/{expected} ({percent}).").format(
                group=_(REPORTER_NAMES.get(kind, kind)),
                received=r.received,
                expected=r.expected,
                percent=i18n.percent(round(r.percent, 1), locale),
            ),
        )
    late = month.late_reports
    if late:
        _para(
            document,
            _("Received late: {names}.").format(names=_names(s.title for s in late)),
        )
    if not month.missing:
        _para(document, _("Every unit due to report has reported."))
        return
    _para(
        document,
        _("Not yet reported ({count}; list in Appendix 4):").format(count=len(month.missing)),
    )
    groups: dict[str, list[str]] = {}
    for row in month.missing:
        who = f"{row.slot.title} ({', '.join(row.people)})" if row.people else row.slot.title
        groups.setdefault(row.slot.district or _("City departments"), []).append(who)
    for district, names in groups.items():
        _para(document, f"- {district}: {_names(names)}.")


def _plan_text(t: TargetRow, _: Gettext, locale: str) -> str:
    if t.plan_min is None:
        return _("not set")
    if t.unit == "percent":
        return i18n.percent(t.plan_min, locale)
    low = i18n.number(t.plan_min, locale)
    if t.plan_max is None:
        return _("≥ {count} clusters").format(count=low)
    if t.plan_max != t.plan_min:
        return _("{low}–{high} clusters").format(low=low, high=i18n.number(t.plan_max, locale))
    return _("{count} clusters").format(count=low)


def _actual_text(t: TargetRow, _: Gettext, locale: str) -> str:
    if t.actual is None:
        return _("No figure reported")
    mark = " (*)" if t.basis else ""  # counted from the registry: said under the table
    if t.unit == "percent":  # the denominator is the registry's rows, said so
        return f"{i18n.percent(t.actual, locale)} ({t.counted(_)}){mark}"
    return _("{count} clusters").format(count=i18n.number(t.actual, locale)) + mark


def _targets(document: DocumentObject, month: Month, _: Gettext, locale: str) -> None:
    """Plan against actual; for a year without a plan, the actual figures alone (no target,
    no assessment)."""
    planned = month.plan is not None
    if planned:
        _heading(document, _("II. RESULTS AGAINST THE TARGETS OF THE PLAN"))
    else:
        _heading(document, _("II. RESULTS OF THE YEAR {year}").format(year=month.period.year))
    _para(
        document,
        _(
            "Cumulative to {period}, from the reports of the cluster investors (details in "
            "Appendices 2 and 3):"
        ).format(period=_month(month.period)),
    )
    targets = [t for t in month.targets if planned or t.actual is not None]
    widths: tuple[float, ...] = (1.3, 7.0, 2.4, 3.2, 2.6) if planned else (1.3, 10.0, 5.2)
    grid = _grid(document, widths, 1 + len(targets), borders=True, header=True)
    header: tuple[str, ...] = (
        (_("No."), _("Target of the plan"), _("Plan"), _("Actual"), _("Assessment"))
        if planned
        else (_("No."), _("Figure"), _("Actual"))
    )
    for cell, text in zip(grid[0], header, strict=True):
        _centred(cell, text, size=BODY, bold=True)
    for number, (t, cells) in enumerate(zip(targets, grid[1:], strict=True), start=1):
        values: tuple[str, ...] = (
            (
                str(number),
                t.title(_, locale),
                _plan_text(t, _, locale),
                _actual_text(t, _, locale),
                _(assessment(t, month)),
            )
            if planned
            else (str(number), t.title(_, locale), _actual_text(t, _, locale))
        )
        for index, (cell, text) in enumerate(zip(cells, values, strict=True)):
            paragraph = cell.paragraphs[0]
            paragraph.paragraph_format.first_line_indent = Cm(0)
            paragraph.paragraph_format.space_after = Pt(0)
            if index != 1:
                paragraph.paragraph_format.alignment = WD_ALIGN_PARAGRAPH.CENTER
            _run(paragraph, text)
    for number, t in enumerate(targets, start=1):
        if t.basis and t.actual is not None:
            _para(
                document,
                _("(*) Target {number}: {basis}.").format(number=number, basis=_(t.basis)),
                after=0,
            )
    _para(document, after=0)


def _value(question: Question, value: str | None, locale: str, _: Gettext) -> str:
    if value is None or value == "":
        return _("no figure")
    return display(question, value, locale)


def _change(
    c: ClusterFacts, question: Question, locale: str, _: Gettext, *, plan: bool = False
) -> str:
    before = c.before.get(question.id)
    now = _value(question, c.now.get(question.id), locale, _)
    if before in (None, "") and plan and c.occupancy_plan is not None:
        was = _("{value} in the plan").format(value=i18n.percent(c.occupancy_plan, locale))
    else:
        was = _value(question, before, locale, _)
    return f"{c.name} ({was} → {now})"


def _group_topics(
    document: DocumentObject, clusters: list[ClusterFacts], month: Month, _: Gettext, locale: str
) -> None:
    form = month.forms[clusters[0].form]
    count = len(clusters)
    for topic in TOPICS:
        question = topic.find(form)
        if question is None:
            continue
        title = _(topic.title)
        qid = question.id
        if topic.key == "groundbreaking":
            broke = [c for c in clusters if done(question, c.now.get(qid))]
            dated = question.counts_toward.dated_by if question.counts_toward else None
            dated_q = next((q for q in form.questions if q.id == dated), None)

            def when(c: ClusterFacts, dated_q: Question | None = dated_q) -> str:
                day = c.now.get(dated_q.id) if dated_q else None
                place = c.district or _("district not given")
                if not day:
                    return f"{c.name} ({place})"
                return _("{cluster} ({district}, on {day})").format(
                    cluster=c.name, district=place, day=i18n.day(date.fromisoformat(day), locale)
                )

            if broke:
                text = _(
                    "{title}: cumulative {done} of {count} clusters in the registry have broken "
                    "ground: {names}."
                )
                _para(
                    document,
                    "- "
                    + text.format(
                        title=title, done=len(broke), count=count, names=_names(map(when, broke))
                    ),
                )
            else:
                _para(
                    document,
                    "- "
                    + _("{title}: no cluster has reported breaking ground.").format(title=title),
                )
            new = [c for c in broke if c.moved(qid)]
            if new:
                _para(
                    document,
                    _("Reported as broken ground in {period}: {names}.").format(
                        period=_month(month.period), names=_names(c.name for c in new)
                    ),
                )
            else:
                _para(
                    document,
                    _("No cluster reported breaking ground in {period}.").format(
                        period=_month(month.period)
                    ),
                )
            continue
        moved = [c for c in clusters if c.moved(qid)]
        if moved:
            changes = (
                _change(c, question, locale, _, plan=topic.key == "occupancy") for c in moved
            )
            sentence = _(
                "{title}: {count} clusters reported a change in {period}: {changes}."
            ).format(
                title=title, count=len(moved), period=_month(month.period), changes=_names(changes)
            )
        else:
            sentence = _("{title}: no cluster reported a change in {period}.").format(
                title=title, period=_month(month.period)
            )
        if topic.key in TOPIC_DONE:
            finished = sum(1 for c in clusters if done(question, c.now.get(qid)))
            sentence += " " + _(TOPIC_DONE[topic.key]).format(done=finished, count=count)
        if topic.key == "occupancy":
            values = [Decimal(v) for c in clusters if (v := c.now.get(qid)) not in (None, "")]
            if values:
                sentence += " " + _(
                    "Average occupancy reported: {percent} ({count} clusters with a figure)."
                ).format(
                    percent=i18n.percent(round(sum(values, Decimal(0)) / len(values), 2), locale),
                    count=len(values),
                )
            else:
                sentence += " " + _("No cluster has reported its occupancy.")
        _para(document, "- " + sentence)


def _clusters(document: DocumentObject, month: Month, _: Gettext, locale: str) -> None:
    _heading(document, _("III. THE CLUSTERS IN {period}").format(period=_month(month.period)))
    number = 0
    for kind in KIND_ORDER:
        clusters = month.of_kind(kind)
        if not clusters:
            continue
        number += 1
        _para(
            document,
            _("{number}. {group} ({count} clusters)").format(
                number=number, group=_(GROUP_NAMES[kind]), count=len(clusters)
            ),
            bold=True,
            italic=True,
        )
        reported = sum(1 for c in clusters if c.fresh)
        never = sum(1 for c in clusters if not c.now)
        _para(
            document,
            _(
                "Reports with figures for {period}: {reported}/{count} clusters; clusters that "
                "have never reported figures: {never}."
            ).format(
                period=_month(month.period), reported=reported, count=len(clusters), never=never
            ),
        )
        _group_topics(document, clusters, month, _, locale)


def _remark_list(document: DocumentObject, remarks: list[Remark], none: str) -> None:
    if not remarks:
        _para(document, none)
        return
    grouped: dict[str, list[Remark]] = {}
    for remark in remarks:
        grouped.setdefault(fold(remark.text), []).append(remark)
    for same in sorted(grouped.values(), key=len, reverse=True):
        # quoted as most of them wrote it (as a sentence, if some began it with a capital)
        texts = [r.text for r in same]
        quoted = max(texts, key=lambda t: (texts.count(t), t[:1].isupper()))
        who = _names(f"{r.subject} ({r.person})" if r.person else r.subject for r in same)
        _para(document, f"- “{quoted}” — {who}.")


def _remarks(document: DocumentObject, month: Month, _: Gettext) -> None:
    _heading(document, _("IV. DIFFICULTIES, OBSTACLES AND PROPOSALS"))
    _para(document, _("1. Difficulties and obstacles reported"), bold=True, italic=True)
    _remark_list(
        document,
        [r for r in month.remarks if r.kind == "difficulty"],
        _("No unit reported a difficulty in {period}.").format(period=_month(month.period)),
    )
    _para(document, _("2. Requests and proposals"), bold=True, italic=True)
    _remark_list(
        document,
        [r for r in month.remarks if r.kind == "proposal"],
        _("No unit made a proposal in {period}.").format(period=_month(month.period)),
    )


def _reported(item: TaskFacts | DutyFacts, _: Gettext, locale: str) -> str:
    """What the units last reported on a task or duty, short (`đơn vị báo cáo: 1 đang triển
    khai, bình quân 40 %`); empty when none has."""
    parts = []
    if item.done:
        parts.append(_("{count} done").format(count=item.done))
    if item.in_progress:
        under_way = _("{count} under way").format(count=item.in_progress)
        if item.average is not None:
            under_way += ", " + _("{percent} on average").format(
                percent=i18n.percent(round(Decimal(str(item.average)), 1), locale)
            )
        parts.append(under_way)
    if item.not_started:
        parts.append(_("{count} not started").format(count=item.not_started))
    return _("units reporting: {parts}").format(parts="; ".join(parts)) if parts else ""


def _tasks(document: DocumentObject, month: Month, _: Gettext, locale: str) -> None:
    """Phụ lục 1's tasks past their due time that the units' latest answers up to the month do
    not all say done (reports/tasks.py), with what was reported."""
    overdue = [t for t in month.tasks if t.overdue(month.period)]
    if not overdue:
        _para(
            document,
            _("No task of Appendix 1 is past its due time without being reported done."),
        )
        return
    _para(
        document,
        _(
            "Tasks of Appendix 1 past their due time that, up to {period}, the units have not "
            "reported done:"
        ).format(period=_month(month.period)),
    )
    for task in overdue:
        line = _("Task {number} ({lead}; due: {due}): {title}").format(
            number=task.number, lead=task.lead, due=task.due_text, title=task.title
        )
        said = _reported(task, _, locale)
        _para(document, f"- {line.rstrip(' .;')}" + (f" — {said}." if said else "."))


def _duties(document: DocumentObject, month: Month, _: Gettext, locale: str) -> None:
    """Section III's duties beyond Phụ lục 1: they have no due time, so those reported up to
    the month, each with what was reported (the workbook's Phụ lục 1 has them all)."""
    if not month.duties:
        return
    reported = [d for d in month.duties if d.done + d.in_progress + d.not_started]
    period = _month(month.period)
    if not reported:
        _para(
            document,
            _(
                "Up to {period}, no unit has reported on the {count} duties of section III of "
                "the plan beyond Appendix 1."
            ).format(period=period, count=len(month.duties)),
        )
        return
    _para(
        document,
        _(
            "Duties of section III of the plan beyond Appendix 1: {reported} of {count} "
            "reported on up to {period} (details in Appendix 1):"
        ).format(reported=len(reported), count=len(month.duties), period=period),
    )
    for duty in reported:
        who = _("{who} (section {section})").format(who=duty.who, section=duty.section)
        _para(document, f"- {who}: {short(duty.text)} — {_reported(duty, _, locale)}.")


def _late(document: DocumentObject, month: Month, _: Gettext, locale: str) -> None:
    _heading(document, _("V. PROGRESS OF THE PLAN'S STEPS AND TASKS"))
    steps = month.late_steps
    if steps:
        _para(
            document,
            _(
                "Steps to groundbreaking past the planned groundbreaking month, by who owns "
                "them (details in Appendix 3):"
            ),
        )
        owners: dict[str, list[str]] = {}
        for step in steps:
            planned = (
                _("planned groundbreaking {month}").format(
                    month=i18n.month(step.planned_groundbreaking, locale)
                )
                if step.planned_groundbreaking
                else _("no planned groundbreaking")
            )
            owners.setdefault(step.owner or _("owner not given in the plan"), []).append(
                f"{step.step} — {step.cluster} ({planned})"
            )
        for owner, items in owners.items():
            _para(document, f"- {owner}: {_names(items)}.")
    else:
        _para(document, _("No cluster is behind its planned groundbreaking."))
    _tasks(document, month, _, locale)
    _duties(document, month, _, locale)


def _closing(document: DocumentObject, _: Gettext) -> None:
    _para(
        document,
        _("The {office} respectfully reports to {recipients}./.").format(
            office=_(OFFICE_NAME),
            recipients=_("the city People's Committee and the Ministry of Industry and Trade"),
        ),
    )


def _signature(document: DocumentObject, _: Gettext) -> None:
    """Recipients | the signer's title (no name: the person who signs writes it)."""
    widths = (8.0, 8.5)
    ((left, right),) = _grid(document, widths, 1, borders=False)
    head = left.paragraphs[0]
    head.paragraph_format.space_after = Pt(0)
    _run(head, _("Recipients:"), bold=True, italic=True, size=RECIPIENTS_HEAD)
    for number, recipient in enumerate(RECIPIENTS, start=1):
        paragraph = left.add_paragraph()
        paragraph.paragraph_format.space_after = Pt(0)
        end = "." if number == len(RECIPIENTS) else ";"
        _run(paragraph, f"- {_(recipient)}{end}", size=RECIPIENTS_ITEM)
    _centred(right, _(SIGNER), size=BODY, bold=True)


def report_document(month: Month, path: Path, locale: str = "vi") -> Path:
    """The month's report, in `locale` (Vietnamese unless the reader's is English)."""
    _ = i18n.gettext_for(locale)
    document = Document()
    _setup(document)
    _heading_block(document, month, _)
    _title(document, month, _)
    _reporting(document, month, _, locale)
    _targets(document, month, _, locale)
    _clusters(document, month, _, locale)
    _remarks(document, month, _)
    _late(document, month, _, locale)
    _closing(document, _)
    _signature(document, _)
    document.core_properties.title = _("Report {period}").format(period=month.period.label())
    document.core_properties.author = _(OFFICE_NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


async def build(
    session: AsyncSession,
    summary: Summary,
    calendar: Calendar,
    path: Path,
    now: datetime,
    locale: str = "vi",
) -> Path:
    """Read the month, then write its report in a worker thread."""
    month = await gather(session, summary, calendar, now)
    return await asyncio.to_thread(report_document, month, path, locale)
