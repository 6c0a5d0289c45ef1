"""A name that looks like a formula is written to the month's workbook as the text it is."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from bot.app import App
from domain.calendar import Period
from domain.roles import Role
from reports.summary import summarise
from reports.workbook import build
from store.access import accept_invitation, create_invitation
from store.db import unit_of_work

RISKY = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may read as a formula
NOW = datetime(2021, 6, 30, 9, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
NAMES = {
    '=HYPERLINK("http://evil.example/","Bấm vào đây")': dict(
        role=Role.DISTRICT, district="Huyện Phú Xuyên"
    ),
    "+84 912 345 678": dict(role=Role.INVESTOR, clusters=["dai-thang"]),
    "-2+3": dict(role=Role.INVESTOR, clusters=["phu-tuc"]),
    "@SUM(1,2)": dict(role=Role.INVESTOR, clusters=["binh-phu"]),
    "\t=1+1": dict(role=Role.DEPARTMENT, organisation="Sở Tài nguyên và Môi trường"),
}


async def test_formula_like_text_is_text_in_every_sheet(app: App, tmp_path: Path) -> None:
    async with unit_of_work(app.sessions) as session:
        for n, (name, scope) in enumerate(NAMES.items()):
            invitation = await create_invitation(session, now=NOW, **scope)  # type: ignore[arg-type]
            await accept_invitation(
                session,
                invitation.token,
                channel="telegram",
                chat_id=str(800 + n),
                display_name=name,
                locale="vi",
                now=NOW,
            )
    async with unit_of_work(app.sessions) as session:
        calendar = app.deps().calendar
        summary = await summarise(session, Period.parse("2021-06"), calendar)
        path = await build(session, summary, calendar, tmp_path / "book.xlsx", NOW)
    book = load_workbook(path)
    owed = [row[3].value for row in book["Chưa báo cáo"].iter_rows(min_row=3)]
    assert set(NAMES) <= set(owed)  # each name shown exactly as it was given
    cells = [c for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
    assert [c.value for c in cells if c.data_type == "f"] == []  # no formula anywhere
    risky = [c for c in cells if isinstance(c.value, str) and c.value[:1] in RISKY]
    assert len(risky) >= len(NAMES)
    for cell in risky:  # text, and marked so that editing the cell keeps it text
        assert cell.data_type == "s" and cell.quotePrefix, cell.value
    total = next(
        r for r in book["Tổng hợp"].iter_rows(values_only=True) if r[0] == "Toàn Thành phố"
    )
    assert all(isinstance(v, int | float) for v in total[1:6])  # numbers stay numbers
