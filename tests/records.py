"""What tests put into the store and read out of it directly, not through a chat: a photo
attached to a stored report, a month's upward workbook."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import App
from domain.calendar import Period
from reports import upward
from reports.summary import summarise
from store.access import accept_invitation, create_invitation
from store.clusters import ImportRejected
from store.models import Report, ReportPhoto
from store.photos import save_photo

# A founded cluster's answers (form `founded`) once its land is cleared and leased and it broke
# ground on 10 May 2021.
BROKE_GROUND = {
    "qhct": "yes",
    "compensation": "yes",
    "gpmb": "100",
    "gpmb_funds": "fully",
    "rice_land": "not_needed",
    "land_lease": "100",
    "groundbreaking": "yes",
    "groundbreaking_date": "2021-05-10",
}


def refusals(
    parse: Callable[[list[str], list[tuple[int, dict[str, str]]]], object],
    header: list[str],
    rows: list[dict[str, str]],
) -> list[tuple[int, str, str]]:
    """(line, column, problem) of each bad cell a table's parser refuses `rows` for, the rows
    on lines 2 and on under `header`."""
    with pytest.raises(ImportRejected) as refused:
        parse(header, list(enumerate(rows, start=2)))
    return [(e.line, e.column, e.problem) for e in refused.value.errors]


async def join(session: AsyncSession, chat_id: str, name: str, now: datetime, **scope: Any) -> None:
    """Someone invited with `scope` (a role, and clusters, a district or an organisation) who
    joined from the Telegram chat `chat_id` shown as `name`."""
    invitation = await create_invitation(session, now=now, **scope)
    await accept_invitation(
        session,
        invitation.token,
        channel="telegram",
        chat_id=chat_id,
        display_name=name,
        locale="vi",
        now=now,
    )


async def attach_photo(
    session: AsyncSession,
    report: Report,
    data: bytes,
    data_dir: Path,
    max_bytes: int,
    received_at: datetime | None = None,
) -> None:
    """The photo `data`, saved, as one of `report`'s: sent by its sender over Telegram, when the
    report was submitted unless `received_at`."""
    photo, _new = await save_photo(session, data, data_dir, max_bytes)
    session.add(
        ReportPhoto(
            photo_id=photo.id,
            report_id=report.id,
            cluster_id=report.cluster_id,
            person_id=report.submitted_by_person_id,
            channel="telegram",
            received_at=received_at or report.submitted_at,
        )
    )


async def workbook_sheets(
    app: App, period: Period, when: datetime, folder: Path
) -> dict[str, list[list[Any]]]:
    """The workbook of `period` written at `when` into `folder`, as /tonghop writes it: each
    sheet's rows of values, by the sheet's title, in the workbook's order."""
    calendar = app.deps().calendar
    async with app.sessions() as session:
        summary = await summarise(session, period, calendar)
        month = await upward.read(session, summary, calendar, when)
    book = load_workbook(upward.write(month, folder).workbook)
    return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in book}
