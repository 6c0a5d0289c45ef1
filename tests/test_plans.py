"""Plans by year, as Sở Công Thương uses them: the 2021 plan ships with the registry, a 2026
plan is imported from CSV or XLSX (all or nothing, a bad row named by line and column), and
`/tonghop`, the workbook, the report to sign and the chart compare a period only with the plan
of its own year — a year without one shows its actual figures and says so once."""

from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from docx import Document
from openpyxl import Workbook, load_workbook
from sqlalchemy import Numeric, String, column, select
from sqlalchemy import table as table_of

from bot.app import App, open_app
from bot.settings import load_settings
from domain.calendar import Period
from domain.roles import Role
from handlers.context import Deps
from reports.plan import plan_of
from reports.summary import Summary, summarise
from store import plans
from store.db import unit_of_work, upgrade
from store.models import ChannelIdentity, Cluster, Report
from store.plans import parse_plans, upsert_plans
from store.tables import read_table
from tests.dialog import Chat, Clock
from tests.inprocess import ccn_exits, exported_rows
from tests.records import join, refusals, workbook_sheets

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
ADMIN = "801"
REGISTRY = Path(__file__).parent.parent / "store" / "registry"
HEADER = list(plans.COLUMNS)
PLAN = ("2026", "15/KH-UBND", "20/1/2026", "18/12/2026", "23/12/2026")
PLAN_2026 = [
    [*PLAN, "groundbreakings", "Khởi công xây dựng HTKT 12 cụm công nghiệp", "12", "12"],
    [*PLAN, "groundbreakings_q1", "Quý I/2026: khởi công 02 cụm công nghiệp", "2", "2"],
    [*PLAN, "groundbreakings_q2", "Quý II/2026: khởi công 04 cụm công nghiệp", "4", "4"],
    [*PLAN, "groundbreakings_q3", "Quý III/2026: khởi công 04 cụm công nghiệp", "4", "4"],
    [*PLAN, "groundbreakings_q4", "Quý IV/2026: khởi công 02 cụm công nghiệp", "2", "2"],
    [*PLAN, "wastewater_operating", "97% cụm đang hoạt động có trạm XLNT đạt chuẩn", "97", "97"],
]
NO_PLAN_2026 = "chưa có kế hoạch năm 2026"


def table(rows: list[list[str]]) -> list[dict[str, str]]:
    units = {"wastewater_operating": "percent"}
    out = []
    for row in rows:
        cells = dict(zip(HEADER, row, strict=False))
        cells.setdefault("unit", units.get(cells["code"], "cluster"))
        quarter = cells["code"].rsplit("_q", 1)
        cells.setdefault("period", f"{cells['year']}-Q{quarter[1]}" if len(quarter) == 2 else "")
        out.append({h: cells.get(h, "") for h in HEADER})
    return out


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[dict[str, str]]) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    for row in rows:  # numbers as numbers, as Excel keeps them
        sheet.append([float(v) if v.replace(".", "").isdigit() else v for v in row.values()])
    book.save(path)
    return path


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=HANOI)


async def import_file(app: App, path: Path) -> plans.PlanImportResult:
    found = read_table(path)
    specs = parse_plans(found.header, found.rows)
    async with unit_of_work(app.sessions) as session:
        return await upsert_plans(session, specs, actor="test", source=str(path))


async def admin_chat(app: App, when: str) -> Chat:
    now = at("2021-05-01T09:00")
    async with unit_of_work(app.sessions) as session:
        await join(session, ADMIN, "Sở Công Thương", now, role=Role.ADMIN)
    base = app.deps()
    return Chat(
        Deps(base.sessions, base.config, Clock(at(when))), chat_id=ADMIN, channel="telegram"
    )


async def broke_ground(app: App, code: str, period: str, day: str) -> None:
    """The cluster's investor reports, for `period`, that it broke ground on `day`."""
    async with unit_of_work(app.sessions) as session:
        cluster = await session.scalar(select(Cluster).where(Cluster.code == code))
        person = await session.scalar(select(ChannelIdentity.person_id))
        assert cluster is not None and person is not None
        submitted = at(f"{period}-20T10:00")
        session.add(
            Report(
                reference=f"BC-{period}-{code}",
                subject=f"cluster:{code}",
                cluster_id=cluster.id,
                period=period,
                form="founded",
                form_version=1,
                version=1,
                answers={"groundbreaking": {"v": "yes"}, "groundbreaking_date": {"v": day}},
                submitted_at=submitted,
                submitted_by_person_id=person,
                channel="telegram",
                deadline_at=at(f"{period}-25T00:00"),
                on_time=True,
            )
        )


async def summary_of(app: App, period: Period) -> Summary:
    async with app.sessions() as session:
        return await summarise(session, period, app.deps().calendar)


def sheet_cells(path: Path, name: str = "Tổng hợp") -> list[Any]:
    return [c for row in load_workbook(path)[name].iter_rows(values_only=True) for c in row]


def document_text(path: Path) -> str:
    document = Document(str(path))
    cells = [c.text for t in document.tables for row in t.rows for c in row.cells]
    return "\n".join([p.text for p in document.paragraphs] + cells)


# --- the shipped plan ----------------------------------------------------------------------


async def test_the_2021_plan_ships_with_the_registry(app: App) -> None:
    async with app.sessions() as session:
        plan = await plan_of(session, 2021)
        assert await plan_of(session, 2022) is None
    assert plan is not None
    assert (plan.number, plan.signed, plan.signed_text()) == (
        "68/KH-UBND",
        date(2021, 3, 17),
        "17/3/2021",
    )
    assert (plan.annual_due_reporters, plan.annual_due_office) == (
        date(2021, 12, 20),
        date(2021, 12, 25),
    )
    quarterly = {g.period: g.value_min for g in plan.goals if "-Q" in g.period}
    assert quarterly == {"2021-Q1": 1, "2021-Q2": 23, "2021-Q3": 13, "2021-Q4": 6}
    with (REGISTRY / "targets.csv").open(encoding="utf-8") as fh:
        assert [g.code for g in plan.goals] == [r["code"] for r in csv.DictReader(fh)]


# --- importing a year's plan -----------------------------------------------------------------


async def test_a_2026_plan_from_csv_sets_the_targets_of_11_2026(app: App, tmp_path: Path) -> None:
    admin = await admin_chat(app, "2026-11-26T09:00")
    await broke_ground(app, "dai-thang", "2021-06", "2021-05-10")
    await broke_ground(app, "phu-tuc", "2026-03", "2026-03-10")
    result = await import_file(app, write_csv(tmp_path / "kh-2026.csv", table(PLAN_2026)))
    assert (result.created, result.updated) == ([2026], [])
    await admin.say("/tonghop 11/2026")
    said = admin.replies[0].text
    assert "Kế hoạch và thực hiện:" in said and NO_PLAN_2026 not in said
    assert "• Khởi công cả năm: 1 / 12" in said  # Phú Túc; Đại Thắng broke ground in 2021
    assert "• Khởi công Quý I: 1 / 2" in said and "• Khởi công Quý II: 0 / 4" in said
    assert "/ 23" not in said and "/ 43" not in said  # nothing of 2021's plan
    document = admin.replies[1].file
    assert document is not None
    written = document_text(document)
    assert "Kế hoạch số 15/KH-UBND ngày 20/1/2026" in written and "68/KH-UBND" not in written
    assert "Quý II/2026: khởi công 04 cụm công nghiệp" in written
    workbook = admin.replies[2].file
    assert workbook is not None
    cells = sheet_cells(workbook)
    assert "Đánh giá" in cells and "Khởi công xây dựng HTKT 12 cụm công nghiệp" in cells
    async with app.sessions() as session:  # 2021 keeps its own plan
        kept = await plan_of(session, 2021)
    assert kept is not None and kept.number == "68/KH-UBND"


async def test_a_year_without_a_plan_shows_its_actual_figures(app: App) -> None:
    admin = await admin_chat(app, "2026-11-26T09:00")
    await broke_ground(app, "dai-thang", "2021-06", "2021-05-10")
    await broke_ground(app, "phu-tuc", "2026-06", "2026-05-04")
    await admin.say("/tonghop 11/2026")
    said = admin.replies[0].text
    assert said.count(NO_PLAN_2026) == 1
    assert "Thực hiện (chưa có kế hoạch năm 2026):" in said
    assert "• Khởi công cả năm: 1\n" in said and "• Khởi công Quý II: 1\n" in said
    assert " / " not in said.split(NO_PLAN_2026)[1] and "✓" not in said
    document = admin.replies[1].file
    assert document is not None
    written = document_text(document)
    assert written.count(NO_PLAN_2026) == 1
    assert "68/KH-UBND" not in written and "Đánh giá" not in written and "43" not in written
    assert "Quý II/2026: Cụm công nghiệp đã khởi công" in written  # the year's own quarters
    workbook = admin.replies[2].file
    assert workbook is not None
    cells = [c for c in sheet_cells(workbook) if isinstance(c, str)]
    assert sum(NO_PLAN_2026 in c for c in cells) == 1
    assert "Đánh giá" not in cells and "Kế hoạch" not in cells and "Đạt" not in cells
    assert not any("2021" in c for c in cells)  # no 2021 target, label or quarter
    assert "Quý II/2026: Cụm công nghiệp đã khởi công" in cells
    chart = admin.replies[1].photos[0].path
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_2022_plan_from_xlsx_is_used_for_2022_only(app: App, tmp_path: Path) -> None:
    rows = [r.copy() for r in table(PLAN_2026)]
    for row in rows:
        row["year"], row["number"], row["signed"] = "2022", "21/KH-UBND", "2022-02-08"
        row["annual_due_reporters"] = row["annual_due_office"] = ""  # the plan's default days
        row["period"] = row["period"].replace("2026", "2022")
    result = await import_file(app, write_xlsx(tmp_path / "kh-2022.xlsx", rows))
    assert result.created == [2022]
    await admin_chat(app, "2022-06-26T09:00")
    await broke_ground(app, "phu-tuc", "2022-05", "2022-04-15")
    june_2022 = await summary_of(app, Period(2022, 6))
    assert june_2022.plan is not None and june_2022.plan.number == "21/KH-UBND"
    assert june_2022.plan.annual_due_office == date(2022, 12, 25)
    targets = {t.code: t for t in june_2022.targets}
    q2 = targets["groundbreakings_q2"]
    assert (q2.plan_min, q2.actual) == (Decimal(4), Decimal(1))
    assert set(targets) == {r["code"] for r in rows}
    june_2023 = await summary_of(app, Period(2023, 6))
    assert june_2023.plan is None and all(t.plan_min is None for t in june_2023.targets)
    assert {t.period for t in june_2023.targets} <= {"2023", *(f"2023-Q{q}" for q in range(1, 5))}
    june_2021 = await summary_of(app, Period(2021, 6))
    assert june_2021.plan is not None and june_2021.plan.number == "68/KH-UBND"


async def test_a_later_groundbreaking_is_not_in_2021s_total(app: App) -> None:
    await admin_chat(app, "2021-12-26T09:00")
    await broke_ground(app, "dai-thang", "2021-06", "2021-05-10")
    await broke_ground(app, "phu-tuc", "2021-12", "2026-01-15")  # a date typed ahead
    december = {t.code: t for t in (await summary_of(app, Period(2021, 12))).targets}
    assert december["groundbreakings"].actual == 1  # Đại Thắng only
    assert sum(december[f"groundbreakings_q{q}"].actual or 0 for q in range(1, 5)) == 1


async def test_replacing_a_years_plan_keeps_the_other_years(app: App, tmp_path: Path) -> None:
    await import_file(app, write_csv(tmp_path / "a.csv", table(PLAN_2026)))
    fewer = table(PLAN_2026[:1])
    fewer[0]["value_min"] = fewer[0]["value_max"] = "15"
    result = await import_file(app, write_csv(tmp_path / "b.csv", fewer))
    assert result.updated == [2026]
    async with app.sessions() as session:
        new, old = await plan_of(session, 2026), await plan_of(session, 2021)
    assert new is not None and [(g.code, g.value_min) for g in new.goals] == [
        ("groundbreakings", Decimal(15))
    ]
    assert old is not None and len(old.goals) == 10


# --- a bad file ------------------------------------------------------------------------------


def test_every_bad_cell_is_named_by_line_and_column() -> None:
    rows = table(PLAN_2026)
    rows[1]["value_min"] = "hai"
    rows[2]["period"] = "2025-Q2"
    rows[3]["signed"] = "21/1/2026"
    rows[4]["code"] = "groundbreakings"
    rows[5]["value_min"] = "120"
    rows += table([[*PLAN, "custom_q3", "Quý III/2026: khác", "1", "1", "cluster", "2026-Q2"]])
    assert refusals(parse_plans, HEADER, rows) == [
        (3, "value_min", "bad_number"),
        (4, "period", "bad_plan_period"),
        (5, "signed", "plan_differs"),
        (6, "code", "duplicate_target"),
        (7, "value_min", "bad_percent"),
        (8, "period", "quarter_code"),
    ]


# --- the command line, on SQLite and PostgreSQL ------------------------------------------------


async def test_a_bad_row_is_refused_and_nothing_is_stored(
    prepared_url: str, tmp_path: Path
) -> None:
    rows = table(PLAN_2026)
    rows[2]["value_min"] = "bốn"
    bad = write_csv(tmp_path / "kh-2026.csv", rows)
    done = await ccn_exits(tmp_path, prepared_url, "plan", "import", str(bad), code=1)
    assert "Dòng 4, cột value_min: không phải số (ví dụ 43 hoặc 12,5) ('bốn')" in done.stderr
    assert "Chưa nhập gì: có 1 lỗi." in done.stderr
    written = await exported_rows(tmp_path, prepared_url, "plan")
    assert {r["year"] for r in written} == {"2021"}


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
async def test_export_and_import_round_trip(prepared_url: str, tmp_path: Path, suffix: str) -> None:
    source = write_csv(tmp_path / "kh-2026.csv", table(PLAN_2026))
    done = await ccn_exits(tmp_path, prepared_url, "plan", "import", str(source))
    assert "Đã nhập kế hoạch: mới 2026; cập nhật —; không đổi —." in done.stdout
    exported = tmp_path / f"plans{suffix}"
    done = await ccn_exits(tmp_path, prepared_url, "plan", "export", str(exported))
    assert "2 kế hoạch, 16 chỉ tiêu" in done.stdout
    again = await ccn_exits(tmp_path, prepared_url, "plan", "import", str(exported))
    assert "mới —; cập nhật —; không đổi 2021, 2026." in again.stdout
    written = read_table(exported)
    assert written.header == HEADER
    assert [r["code"] for _line, r in written.rows][10:] == [r[5] for r in PLAN_2026]
    assert {r["signed"] for _line, r in written.rows} == {"2021-03-17", "2026-01-20"}


# --- the 2021 reports stay as they were ------------------------------------------------------


async def test_the_2021_workbook_of_a_past_month_is_unchanged(app: App, tmp_path: Path) -> None:
    await admin_chat(app, "2021-06-26T09:00")
    await broke_ground(app, "dai-thang", "2021-06", "2021-05-10")

    async def june_2021(folder: Path) -> list[list[list[Any]]]:
        sheets = await workbook_sheets(app, Period(2021, 6), at("2021-06-26T09:00"), folder)
        return list(sheets.values())

    before = await june_2021(tmp_path / "before")
    await import_file(app, write_csv(tmp_path / "kh-2026.csv", table(PLAN_2026)))
    await broke_ground(app, "phu-tuc", "2026-03", "2026-03-10")
    assert await june_2021(tmp_path / "after") == before
    summary_sheet = [c for row in before[0] for c in row]
    assert "Đánh giá" in summary_sheet and NO_PLAN_2026 not in summary_sheet
    assert any(isinstance(c, str) and c.startswith("Quý II/2021: Dự kiến") for c in summary_sheet)


# --- an existing database ----------------------------------------------------------------------


async def test_migration_makes_the_stored_targets_the_2021_plan(
    db_url: str, tmp_path: Path
) -> None:
    settings = load_settings(DATA_DIR=tmp_path / "data", DATABASE_URL=db_url)
    async with open_app(settings) as app:
        await upgrade(app.engine, "0007")
        with (REGISTRY / "targets.csv").open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        targets = table_of(
            "targets",
            column("code", String()),
            column("label", String()),
            column("value_min", Numeric(10, 2)),
            column("value_max", Numeric(10, 2)),
            column("unit", String()),
            column("period", String()),
        )
        async with app.engine.begin() as conn:
            await conn.execute(
                targets.insert(),
                [
                    {
                        "code": row["code"],
                        "label": row["label"],
                        "value_min": Decimal(row["value_min"]) if row["value_min"] else None,
                        "value_max": Decimal(row["value_max"]) if row["value_max"] else None,
                        "unit": row["unit"],
                        "period": row["period"],
                    }
                    for row in rows
                ],
            )
        await upgrade(app.engine)
        async with app.sessions() as session:
            plan = await plan_of(session, 2021)
    assert plan is not None and plan.number == "68/KH-UBND" and plan.signed == date(2021, 3, 17)
    assert [g.code for g in plan.goals] == [r["code"] for r in rows]
