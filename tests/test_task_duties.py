"""Phụ lục 1's due times and section III's duties: a task not done by its due time is late in
the workbook and in what its lead sees; an organisation that is only a partner in Phụ lục 1 is
asked about its own duties of section III, and they show in the workbook."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import Engine, String, column, event, func, select, table

from bot.app import App, open_app
from bot.settings import load_settings
from domain.calendar import Period
from domain.forms import Form
from domain.roles import Role
from handlers.context import Deps
from reminders.policy import Policy
from reminders.sender import plan
from reports import upward, workbook
from reports.summary import summarise
from reports.tasks import late_of, own_lines
from store.db import unit_of_work, upgrade, url_of
from store.duties import duties_of
from store.forms import FOLDER, load_forms
from store.models import Duty, DutyAssignment, Organisation, Person, Report
from tests.dialog import Chat, finish, play
from tests.inprocess import ccn_at
from tests.test_commune_scope import MERGE, NEW, OLD, at_clock
from tests.test_dialogs import invite
from tests.test_orgs import import_orgs, join, write_csv
from tests.test_status import (
    ADMIN,
    DEPARTMENT,
    DISTRICT,
    at,
    chat_for,
    month,
    person_id,
    tasks_report,
)

__all__ = ["month"]
HEADER_ROW = 8
SHEET = "PL1 Nhiệm vụ"
LATE = "Quá hạn"


async def org_report(app: App, chat: str, period: str, values: dict[str, str], when: str) -> None:
    """A task report of the person's organisation, as if sent at `when`."""
    who = await person_id(app, chat)
    async with unit_of_work(app.sessions) as session:
        person = await session.get(Person, who)
        assert person is not None and person.organisation_id is not None
        session.add(tasks_report(app, person.organisation_id, period, values, by=who, when=when))


async def pl1(
    app: App, period: Period, folder: Path, forms: dict[str, Form] | None = None
) -> list[dict[str, Any]]:
    """The rows of the workbook's Phụ lục 1 sheet for `period`, by the header's words (the
    answers read by `forms`, the bot's unless given)."""
    calendar = app.deps().calendar
    async with app.sessions() as session:
        summary = await summarise(session, period, calendar, forms=forms)
        path = await workbook.build(
            session, summary, calendar, folder / f"{period}.xlsx", at("2021-08-26T09:00")
        )
    sheet = load_workbook(path)[SHEET]
    header = [str(c.value) for c in sheet[HEADER_ROW]]
    return [
        dict(zip(header, r, strict=True))
        for r in sheet.iter_rows(min_row=HEADER_ROW + 1, values_only=True)
    ]


def task_row(rows: list[dict[str, Any]], number: int) -> dict[str, Any]:
    """Task `number` of Phụ lục 1: the numbered rows before the duties' group row."""
    tasks = []
    for row in rows:
        if row["STT"] == "B":
            break
        if isinstance(row["STT"], int):
            tasks.append(row)
    return tasks[number - 1]


# --- late tasks ---------------------------------------------------------------------------------


async def test_the_workbook_says_a_task_is_late_after_its_due_quarter(
    month: App, tmp_path: Path
) -> None:
    june = await pl1(month, Period(2021, 6), tmp_path)
    assert LATE in june[0] and task_row(june, 1)[LATE] is None  # due in Quý II: June is in it
    assert task_row(june, 18)[LATE] is None
    assert task_row(june, 9)[LATE] == "Quá hạn từ tháng 04/2021"  # due in April, not done
    july = await pl1(month, Period(2021, 7), tmp_path)
    assert task_row(july, 1)[LATE] == "Quá hạn từ Quý II/2021"
    assert task_row(july, 18)[LATE] == "Quá hạn từ Quý II/2021"
    assert task_row(july, 5)[LATE] is None  # due in 2021
    assert task_row(july, 21)[LATE] is None  # monthly: no single due time
    total = july[-1]
    assert str(total["Nhiệm vụ"]).startswith("Tổng cộng (26 nhiệm vụ Phụ lục 1")
    late = [n for n in range(1, 27) if task_row(july, n)[LATE]]
    assert total[LATE] == len(late) and 1 in late
    # the leads report them done (Sở Công Thương in July; Phú Xuyên, the one district
    # reporting task 18, in June: a task done stays done)
    await org_report(month, ADMIN, "2021-07", {"t1.status": "done"}, "2021-07-20T10:00")
    await org_report(month, DISTRICT, "2021-06", {"t18.status": "done"}, "2021-06-20T10:00")
    july = await pl1(month, Period(2021, 7), tmp_path)
    assert task_row(july, 1)[LATE] is None and task_row(july, 1)["Đã hoàn thành"] == 1
    assert task_row(july, 18)[LATE] is None and task_row(july, 18)["Đã hoàn thành"] == 1


async def test_the_lead_sees_its_late_tasks_in_its_status_answer(month: App) -> None:
    district = chat_for(month, DISTRICT, "2021-06-26T09:00")
    await district.say("/tinhhinh")
    assert "NV 18" not in district.text  # Quý II/2021 is not over
    assert "NV 20 — quá hạn từ tháng 05/2021" in district.text  # due in May 2021
    await org_report(
        month,
        DISTRICT,
        "2021-06",
        {"t18.status": "in_progress", "t18.percent": "50"},
        "2021-06-20T10:00",
    )
    district = chat_for(month, DISTRICT, "2021-07-05T09:00")
    await district.say("/tinhhinh")
    assert "Nhiệm vụ Phụ lục 1 do UBND Huyện Phú Xuyên chủ trì đã quá hạn:" in district.text
    assert (
        "• NV 18 — quá hạn từ Quý II/2021: Rà soát, cập nhật, bổ sung các loại hình quy hoạch"
        in district.text
    )
    assert "(báo cáo gần nhất tháng 06/2021: Đang triển khai, 50 %)" in district.text
    assert "Anh/chị gõ tên cụm, ví dụ: /tinhhinh Đại Thắng." in district.text  # as before
    department = chat_for(month, DEPARTMENT, "2021-03-20T09:00")
    await department.say("/tinhhinh")
    assert "quá hạn" not in department.text  # tasks 10 and 12 are due in March
    department = chat_for(month, DEPARTMENT, "2021-04-02T09:00")
    await department.say("/tinhhinh")
    assert "• NV 10 — quá hạn từ tháng 03/2021" in department.text
    assert "• NV 12 — quá hạn từ tháng 03/2021" in department.text
    assert "(chưa báo cáo)" in department.text


async def test_sở_công_thương_sees_the_citys_late_tasks_in_the_summary(month: App) -> None:
    admin = chat_for(month, ADMIN, "2021-06-26T09:00")
    await admin.say("/tonghop 6/2021")
    june = admin.replies[0].text
    assert "NV 9 (Sở Kế hoạch và Đầu tư) — quá hạn từ tháng 04/2021" in june
    assert "NV 1 (" not in june
    admin = chat_for(month, ADMIN, "2021-07-26T09:00")
    await admin.say("/tonghop 7/2021")
    july = admin.replies[0].text
    assert "Nhiệm vụ Phụ lục 1 quá hạn (" in july
    assert "• NV 1 (Sở Công Thương) — quá hạn từ Quý II/2021: Xây dựng, ban hành Quy chế" in july


# --- section III's duties -------------------------------------------------------------------------


FINANCE_JUNE = [
    ("/baocao", "Báo cáo tháng 06/2021 — Sở Tài chính | NV 14 | tiến độ thế nào?"),
    ("[Đang triển khai]", "đã thực hiện khoảng bao nhiêu %"),
    ("30", "ghi chú"),
    (
        "[Bỏ qua]",
        "Mục III.5: Rà soát, nghiên cứu đề xuất phương án chuyển đổi công tác quản lý "
        "| tiến độ thế nào?",
    ),
    ("[Đang triển khai]", "Mục III.5: Rà soát | đã thực hiện khoảng bao nhiêu %"),
    ("40", "ghi chú"),
    ("Đã trình dự thảo phương án", "Mục III.5: Nghiên cứu đề xuất phương án thống nhất 01 Chủ"),
]


async def test_a_partner_only_department_reports_its_section_iii_duties(
    deps: Deps, app: App, tmp_path: Path
) -> None:
    chat = Chat(deps, chat_id="4004")
    token = await invite(deps, Role.DEPARTMENT, organisation="Sở Tài chính")
    await play(chat, [(f"/start {token}", "Sở Tài chính")])
    await play(chat, FINANCE_JUNE)
    await finish(chat, prefer=("Đã hoàn thành", "Bỏ qua"))
    summary = chat.text
    for words in ("Giải quyết các khó khăn vướng mắc", "Tham mưu UBND Thành phố bố trí kinh phí"):
        assert words in summary  # every duty of its section of the plan was asked
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    async with app.sessions() as session:
        report = await session.scalar(select(Report).where(Report.form == "tasks"))
    assert report is not None
    assert report.answers["d5-1.status"] == {"v": "in_progress"}
    assert report.answers["d5-1.percent"] == {"v": "40"}
    assert report.answers["d5-1.note"] == {"v": "Đã trình dự thảo phương án"}
    assert report.answers["d5-5.status"] == {"v": "done"}
    rows = await pl1(app, Period(2021, 6), tmp_path)
    groups = [r["Nhiệm vụ"] for r in rows if isinstance(r["STT"], str)]
    assert groups == [
        "Nhiệm vụ tại Phụ lục 1",
        "Nhiệm vụ tại mục III (Tổ chức thực hiện) của Kế hoạch, ngoài Phụ lục 1",
    ]
    duties = rows[rows.index(next(r for r in rows if r["STT"] == "B")) + 1 : -1]
    assert [r["STT"] for r in duties] == list(range(1, len(duties) + 1))
    finance = [r for r in duties if r["Chủ trì"] == "Sở Tài chính (mục III.5)"]
    assert len(finance) == 5
    first = finance[0]
    assert str(first["Nhiệm vụ"]).startswith("Rà soát, nghiên cứu đề xuất phương án chuyển đổi")
    assert first["Đang triển khai"] == 1 and first["Tiến độ bình quân"] == 0.4
    assert finance[4]["Đã hoàn thành"] == 1
    assert task_row(rows, 14)["Đang triển khai"] == 1  # its Phụ lục 1 task as before
    assert str(rows[-1]["Nhiệm vụ"]) == (
        f"Tổng cộng (26 nhiệm vụ Phụ lục 1, {len(duties)} nhiệm vụ mục III)"
    )


async def test_duties_are_matched_to_organisations_as_tasks_are(app: App) -> None:
    async with app.sessions() as session:
        orgs = {
            o.name: o.id
            for o in (await session.scalars(select(Organisation))).all()
            if o.name in ("Sở Xây dựng", "Sở Quy hoạch - Kiến trúc", "Sở Công Thương")
        }
        building = await duties_of(session, orgs["Sở Xây dựng"], "all_departments")
        planning = await duties_of(session, orgs["Sở Quy hoạch - Kiến trúc"], "all_departments")
        industry = await duties_of(session, orgs["Sở Công Thương"], "all_departments")
        districts = await duties_of(session, None, "all_districts")
    assert [d.code for d in building] == ["d7-2", "d7-3"]
    assert [d.code for d in planning] == ["d4-2"]  # task 13 covers its other duty
    assert industry == []  # tasks 1–8 and 16 cover section III.1
    assert [d.code for d in districts] == ["d8-1", "d8-6", "d8-9"]


async def test_the_migration_gives_a_loaded_database_the_duties(
    db_url: str, tmp_path: Path
) -> None:
    settings = load_settings(DATA_DIR=tmp_path / "data", DATABASE_URL=db_url)
    async with open_app(settings) as app:
        await upgrade(app.engine, "0012")
        organisations = table(
            "organisations",
            column("name", String()),
            column("kind", String()),
            column("aliases", String()),
        )
        tasks = table(
            "tasks",
            *(column(c, String()) for c in ("title", "lead_text", "partners_text", "due_text")),
            column("number"),
            column("due_kind", String()),
            column("due_value", String()),
        )
        async with app.engine.begin() as conn:  # a registry of 0012's time, in brief
            await conn.execute(
                organisations.insert(),
                [
                    {"name": "Sở Tài nguyên và Môi trường", "kind": "department", "aliases": ""},
                    {
                        "name": "Sở Quy hoạch - Kiến trúc",
                        "kind": "department",
                        "aliases": "Sở Quy hoạch Kiến trúc",
                    },
                ],
            )
            await conn.execute(
                tasks.insert().values(
                    number=1,
                    title="…",
                    lead_text="",
                    partners_text="",
                    due_text="",
                    due_kind="quarter",
                    due_value="2021-Q2",
                )
            )
        await upgrade(app.engine)
        async with app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Duty)) == 15
            names = (await session.scalars(select(Organisation.name))).all()
            environment = await session.scalar(
                select(Organisation.id).where(Organisation.name == "Sở Tài nguyên và Môi trường")
            )
            mine = await duties_of(session, environment, "all_departments")
            assigned = await session.scalar(select(func.count()).select_from(DutyAssignment))
    assert [d.code for d in mine] == ["d3-1", "d3-5"]
    assert names.count("Sở Quy hoạch - Kiến trúc") == 1 and "Sở Tài chính" in names
    assert assigned == 1 + 2 + 1 + 5 + 1 + 2 * 5 + 3  # by name, and the districts' group


# --- what the tasks form's answers mean is its data ---------------------------------------------

# The tasks form with other ids and values: what reads it must go by `means:`, not by names.
RENAMED = {"status": "tien_do", "percent": "phan_tram"}
VALUES = {"not_started": "chua_lam", "in_progress": "dang_lam", "done": "xong"}


def renamed_forms(tmp_path: Path) -> dict[str, Form]:
    folder = tmp_path / "forms"
    folder.mkdir()
    for path in FOLDER.glob("*.yaml"):
        shutil.copyfile(path, folder / path.name)
    tasks = folder / "tasks.yaml"
    text = tasks.read_text(encoding="utf-8")
    for old, new in RENAMED.items():
        text = re.sub(rf"\b(id|question): {old}\b", rf"\1: {new}", text)
    for old, new in VALUES.items():
        text = re.sub(rf"\b(value|equals): {old}\b", rf"\1: {new}", text)
    assert "status" not in text.split("form: tasks")[1] and "in_progress" not in text
    tasks.write_text(text, encoding="utf-8")
    forms = load_forms.__wrapped__(folder)
    assert [q.id for q in forms["tasks"].each_item] == ["tien_do", "phan_tram", "note"]
    return forms


async def test_a_tasks_form_with_other_ids_counts_and_flags_the_same(
    month: App, tmp_path: Path
) -> None:
    await org_report(month, ADMIN, "2021-07", {"t1.status": "done"}, "2021-07-20T10:00")
    await org_report(
        month,
        DISTRICT,
        "2021-06",
        {"t18.status": "in_progress", "t18.percent": "50", "t20.status": "done"},
        "2021-06-20T10:00",
    )
    await org_report(month, DEPARTMENT, "2021-06", {"t10.status": "not_started"}, "2021-06-20")
    july = Period(2021, 7)
    district = await person_id(month, DISTRICT)
    async with month.sessions() as session:
        person = await session.get(Person, district)
        assert person is not None and person.organisation_id is not None
        org = person.organisation_id
        late = (await late_of(session, july, [(org, "all_districts")]))[org]
    before = await pl1(month, july, tmp_path / "a")
    mine = own_lines(late, "vi", {"in_progress": "Đang triển khai"})
    assert task_row(before, 18)["Đang triển khai"] == 1 and task_row(before, 18)[LATE]
    assert task_row(before, 1)["Đã hoàn thành"] == 1 and not task_row(before, 1)[LATE]
    assert any("NV 18" in line and "Đang triển khai, 50 %" in line for line in mine)

    # the same reports, answered by the renamed form
    async with unit_of_work(month.sessions) as session:
        for report in (await session.scalars(select(Report).where(Report.form == "tasks"))).all():
            answers = {}
            for qid, entry in report.answers.items():
                item, _dot, sub = qid.partition(".")
                value = entry["v"]
                answers[f"{item}.{RENAMED.get(sub, sub)}"] = {"v": VALUES.get(value, value)}
            report.answers = answers
    forms = renamed_forms(tmp_path)
    assert await pl1(month, july, tmp_path / "b", forms) == before
    form = forms["tasks"]
    async with month.sessions() as session:
        again = (await late_of(session, july, [(org, "all_districts")], form))[org]
    assert own_lines(again, "vi", {"dang_lam": "Đang triển khai"}) == mine
    # read by the bot's own form, the renamed answers say nothing
    assert task_row(await pl1(month, july, tmp_path / "c"), 1)["Đã hoàn thành"] == 0


# --- /tonghop reads the city's tasks once -------------------------------------------------------


@contextmanager
def statements(target: Engine | type[Engine]) -> Iterator[list[str]]:
    """The SQL statements run on an engine (or on every engine of this process) while it
    lasts."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)


def reads(seen: list[str], table_name: str) -> int:
    return len([q for q in seen if re.search(rf"\bFROM {table_name}\b", q)])


async def test_the_summary_reads_the_citys_tasks_and_duties_once(
    month: App, tmp_path: Path
) -> None:
    admin = chat_for(month, ADMIN, "2021-07-26T09:00")
    with statements(month.engine.sync_engine) as seen:
        await admin.say("/tonghop 7/2021")
    assert "• NV 1 (Sở Công Thương) — quá hạn từ Quý II/2021" in admin.replies[0].text
    assert [r.file.name for r in admin.replies if r.file] == [
        "bao-cao-2021-07.docx",
        "tong-hop-2021-07.xlsx",
    ]
    # the bot's process reads nothing of the month: the files' child reads it (reports.upward)
    assert [reads(seen, t) for t in ("tasks", "duties", "reports")] == [0, 0, 0]
    url = url_of(month.sessions)
    assert url is not None
    with statements(Engine) as seen:  # the child's work, here: its engine is its own
        await asyncio.to_thread(
            upward.answer,
            url,
            Period(2021, 7),
            month.deps().calendar,
            tmp_path,
            at("2021-07-26T09:00"),
        )
    assert [reads(seen, t) for t in ("tasks", "duties")] == [1, 1]


# --- a merge hands the late tasks on -------------------------------------------------------------


async def test_a_successor_is_told_of_its_predecessors_late_tasks(app: App, tmp_path: Path) -> None:
    """Sở Tài nguyên và Môi trường leads tasks 10 and 12 (due March 2021) and is merged into Sở
    Nông nghiệp và Môi trường from March 2025: from then, the successor's late tasks are its
    predecessor's, the later answer of the two counting."""
    old = await join(app, "2025-01-05T09:00", "7001", Role.DEPARTMENT, organisation=OLD)
    await org_report(
        app,
        "7001",
        "2025-02",
        {"t10.status": "done", "t12.status": "in_progress", "t12.percent": "50"},
        "2025-02-20T10:00",
    )
    await import_orgs(app, write_csv(tmp_path / "merge.csv", MERGE))
    new = await join(app, "2025-03-02T09:00", "7002", Role.DEPARTMENT, organisation=NEW)
    calendar = app.deps().calendar

    async def reminded(moment: str) -> dict[str, str]:
        async with app.sessions() as session:
            outgoing, _skipped = await plan(
                session, calendar, Policy(), at(moment), frozenset({"telegram"})
            )
        return {o.chat_id: o.reply.text for o in outgoing if o.kind.startswith("due")}

    seen = await new.say("/tinhhinh")
    assert f"Nhiệm vụ Phụ lục 1 do {NEW} chủ trì đã quá hạn:" in seen
    assert "• NV 12 — quá hạn từ tháng 03/2021" in seen
    assert "(báo cáo gần nhất tháng 02/2025: Đang triển khai, 50 %)" in seen
    assert "NV 10" not in seen  # reported done by the predecessor
    reminders = await reminded("2025-03-20T08:00")
    assert set(reminders) == {"7001", "7002"}
    for text in reminders.values():
        assert "• NV 12 — quá hạn từ tháng 03/2021" in text and "NV 10" not in text
    # the successor reports task 12 done: it is late no more, for it and for the city, where
    # the predecessor's last "in progress" no longer counts on its own
    await org_report(app, "7002", "2025-03", {"t12.status": "done"}, "2025-03-20T10:00")
    for officer in (new, at_clock(old, "2025-03-25T09:00")):
        seen = await officer.say("/tinhhinh")
        assert f"Nhiệm vụ Phụ lục 1 do {NEW} chủ trì đã quá hạn:" in seen
        assert "NV 12" not in seen and "NV 10" not in seen
        assert "• NV 14 — quá hạn từ năm 2021" in seen  # every department's, not reported
    rows = await pl1(app, Period(2025, 3), tmp_path)
    assert task_row(rows, 12)[LATE] is None
    assert (task_row(rows, 12)["Đã hoàn thành"], task_row(rows, 12)["Đang triển khai"]) == (1, 0)
    assert task_row(rows, 10)["Đã hoàn thành"] == 1


# --- the registry's duties, counted and fitting a button ------------------------------------------


async def test_registry_load_counts_the_duties(prepared_url: str, tmp_path: Path) -> None:
    done = await asyncio.to_thread(ccn_at, tmp_path, prepared_url, "registry", "load")
    assert done.returncode == 0, done.stderr
    assert "nhiệm vụ Phụ lục 1, 15 nhiệm vụ mục III." in done.stdout
