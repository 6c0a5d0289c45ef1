"""The month's files for the report Sở Công Thương sends upward by the 28th: the report
(DOCX) and its appendices (the XLSX workbook), from one reading of the month.

`read` is the only part that touches the database, and is short; `write` builds both files
from the plain-data `Month` and is slow (about a second for a thousand clusters), so it runs in
the files' child process (reports.offload), where it does not hold the event loop's GIL:
`await build(...)` does both, or a caller that wants the files built after its transaction
has closed awaits `read` inside it and `offload.run(write, ...)` after it. `write` called
directly (`ccn-bot export`) builds them in the caller's process. The summary chart /tonghop
sends with them is drawn there too (`chart`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from domain.calendar import Calendar
from reports import chart as charts
from reports import document, offload, workbook
from reports.month import Month, gather
from reports.summary import Summary

__all__ = ["MonthFiles", "build", "chart", "read", "write"]


@dataclass(frozen=True)
class MonthFiles:
    document: Path  # the report, DOCX
    workbook: Path  # its appendices, XLSX


read = gather


def write(month: Month, folder: Path, locale: str = "vi", stem: str | None = None) -> MonthFiles:
    """Both files into `folder`, named `bao-cao-<YYYY-MM>.docx` and `tong-hop-<YYYY-MM>.xlsx`
    (or `<stem>.docx` and `<stem>.xlsx`). The workbook, sent upward, is in Vietnamese; the
    report in `locale`."""
    docx_name = f"{stem}.docx" if stem else f"bao-cao-{month.period}.docx"
    xlsx_name = f"{stem}.xlsx" if stem else f"tong-hop-{month.period}.xlsx"
    return MonthFiles(
        document.report_document(month, folder / docx_name, locale),
        workbook.render(month, folder / xlsx_name),
    )


async def build(
    session: AsyncSession,
    summary: Summary,
    calendar: Calendar,
    folder: Path,
    now: datetime,
    locale: str = "vi",
    month: Month | None = None,
) -> MonthFiles:
    """Read the month here (unless `month` is it, read already), then write both files in the
    files' child process."""
    if month is None:
        month = await read(session, summary, calendar, now)
    return await offload.run(write, month, folder, locale)


async def chart(summary: Summary, path: Path, locale: str = "vi") -> Path:
    """The summary chart (`reports.chart.render`) drawn in the files' child process, from the
    summary's figures: its slots and answers (rows of the store) stay here."""
    figures = dataclasses.replace(summary, slots=[], answers={})
    return await offload.run(charts.render, figures, path, locale)
