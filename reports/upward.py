"""The month's files for the report Sở Công Thương sends upward by the 28th: the report
(DOCX) and its appendices (the XLSX workbook), from one reading of the month.

`read` is the only part that touches the database; `write` builds both files from the
plain-data `Month` and is slow (about a second for a thousand clusters). `answer` does the
whole month — the summary, the reading, both files and the chart — in the files' child process
(reports.offload), from a connection of its own: the bot's event loop and its transactions wait
for none of it (/tonghop, handlers/status.py). `await build(...)` reads here and writes there;
`write` called directly (`ccn-bot export`) builds them in the caller's process."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from domain.calendar import Calendar, Period
from reports import chart as charts
from reports import offload
from reports.month import Month, gather
from reports.summary import Summary, summarise
from reports.tasks import TaskFacts
from store.db import make_engine, snapshot

__all__ = ["MonthAnswer", "MonthFiles", "answer", "build", "chart", "read", "write"]


@dataclass(frozen=True)
class MonthFiles:
    document: Path  # the report, DOCX
    workbook: Path  # its appendices, XLSX


read = gather


def write(month: Month, folder: Path, locale: str = "vi", stem: str | None = None) -> MonthFiles:
    """Both files into `folder`, named `bao-cao-<YYYY-MM>.docx` and `tong-hop-<YYYY-MM>.xlsx`
    (or `<stem>.docx` and `<stem>.xlsx`). The workbook, sent upward, is in Vietnamese; the
    report in `locale`."""
    from reports import document, workbook  # python-docx and openpyxl: not in the bot's process

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
) -> MonthFiles:
    """Read the month here, then write both files in the files' child process."""
    return await offload.run(write, await read(session, summary, calendar, now), folder, locale)


def figures(summary: Summary) -> Summary:
    """The summary without its slots and answers (rows of the store): what the chart and the
    message say, and what pickles small."""
    return dataclasses.replace(summary, slots=[], answers={})


async def chart(summary: Summary, path: Path, locale: str = "vi") -> Path:
    """The summary chart (`reports.chart.render`) drawn in the files' child process, from the
    summary's figures."""
    return await offload.run(charts.render, figures(summary), path, locale)


@dataclass(frozen=True)
class MonthAnswer:
    """What /tonghop sends for the whole city: the summary's figures, the tasks late at the end
    of the month, both files and the chart."""

    summary: Summary  # its figures (`figures`)
    tasks: list[TaskFacts]
    files: MonthFiles
    chart: Path
    seconds: dict[str, float]  # how long each part took: read, files, chart


def answer(
    url: str, period: Period, calendar: Calendar, folder: Path, now: datetime, locale: str = "vi"
) -> MonthAnswer:
    """The month for the whole city, read from the database at `url` in one snapshot (what is
    committed: a report filed meanwhile is in all of it or in none), then both files and the
    chart written into `folder`. Run in the files' child process (`offload.run(answer, ...)`)."""
    started = time.perf_counter()
    summary, month = asyncio.run(_read(url, period, calendar, now))
    read_at = time.perf_counter()
    files = write(month, folder, locale)
    written_at = time.perf_counter()
    picture = charts.render(summary, folder / f"tong-hop-{period}.png", locale)
    seconds = {
        "read": read_at - started,
        "files": written_at - read_at,
        "chart": time.perf_counter() - written_at,
    }
    return MonthAnswer(figures(summary), month.tasks, files, picture, seconds)


async def _read(
    url: str, period: Period, calendar: Calendar, now: datetime
) -> tuple[Summary, Month]:
    engine = make_engine(url)
    try:
        async with snapshot(engine) as session:
            summary = await summarise(session, period, calendar)
            return summary, await gather(session, summary, calendar, now)
    finally:
        await engine.dispose()
