"""Sở Công Thương's view checked against a small hand-built month: the card, who is missing,
the summary's numbers and the workbook cell by cell, and who may see what."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from docx import Document
from openpyxl import load_workbook
from sqlalchemy import select

from bot.app import App
from domain.calendar import Period
from domain.roles import Role
from domain.subjects import Subject
from handlers.context import Deps
from reports.summary import TargetRow, summarise
from store.db import unit_of_work
from store.models import ChannelIdentity, Cluster, Report
from tests.dialog import Chat, Clock, image
from tests.records import BROKE_GROUND, attach_photo, join

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
ADMIN, DISTRICT, INVESTOR_A, INVESTOR_B, DEPARTMENT, STRANGER = (
    "901",
    "902",
    "903",
    "904",
    "905",
    "999",
)
FOUNDED_DONE = {
    **BROKE_GROUND,
    "htkt": "100",
    "wastewater": "operating",
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HANOI)


async def person_id(app: App, chat: str) -> int:
    async with app.sessions() as session:
        found = await session.scalar(
            select(ChannelIdentity.person_id).where(ChannelIdentity.external_id == chat)
        )
    assert found is not None
    return found


async def report(
    app: App,
    chat: str,
    code: str,
    period: str,
    values: dict[str, str],
    when: str,
    form: str = "founded",
    version: int = 1,
) -> Report:
    who = await person_id(app, chat)
    async with unit_of_work(app.sessions) as session:
        cluster = await session.scalar(select(Cluster).where(Cluster.code == code))
        assert cluster is not None
        reference = f"BC-{period}-{code}-{version}"
        if len(reference) > 32:  # the column's width: a long code gives way to the id
            reference = f"BC-{period}-{cluster.id}-{version}"
        row = Report(
            reference=reference,
            subject=f"cluster:{code}",
            cluster_id=cluster.id,
            form=form,
            version=version,
            **sent(app, period, values, by=who, when=when),
        )
        session.add(row)
        return row


def tasks_report(
    app: App, org: int, period: str, values: dict[str, str], *, by: int, when: str
) -> Report:
    """The tasks report of organisation `org` for `period`, sent by person `by` at `when`."""
    return Report(
        reference=f"BC-{period}-org{org}",
        subject=Subject.org(org),
        organisation_id=org,
        form="tasks",
        version=1,
        **sent(app, period, values, by=by, when=when),
    )


def sent(app: App, period: str, values: dict[str, str], *, by: int, when: str) -> dict[str, Any]:
    """A report's columns once person `by` sent `values` for `period` over Telegram at `when`
    (on time or late against the period's deadline)."""
    deadline = app.deps().calendar.deadline(Period.parse(period))
    return {
        "period": period,
        "form_version": 1,
        "answers": {k: {"v": v} for k, v in values.items()},
        "submitted_at": at(when),
        "submitted_by_person_id": by,
        "channel": "telegram",
        "deadline_at": deadline,
        "on_time": at(when) < deadline,
    }


@pytest.fixture
async def month(app: App, tmp_path: Path) -> App:
    """June 2021: five reporters, three reports in (one late), one photo."""
    now = at("2021-05-01T09:00")
    people: list[tuple[str, str, dict[str, Any]]] = [
        (ADMIN, "Sở Công Thương", dict(role=Role.ADMIN)),
        (DISTRICT, "Anh Hùng", dict(role=Role.DISTRICT, district="Huyện Phú Xuyên")),
        (INVESTOR_A, "Chị Lan", dict(role=Role.INVESTOR, clusters=["dai-thang", "phu-tuc"])),
        (INVESTOR_B, "Anh Minh", dict(role=Role.INVESTOR, clusters=["binh-phu"])),
        (
            DEPARTMENT,
            "Chị Mai",
            dict(role=Role.DEPARTMENT, organisation="Sở Tài nguyên và Môi trường"),
        ),
    ]
    async with unit_of_work(app.sessions) as session:
        for chat, name, scope in people:
            await join(session, chat, name, now, **scope)
    await report(
        app,
        INVESTOR_A,
        "dai-thang",
        "2021-05",
        {**FOUNDED_DONE, "gpmb": "80", "land_lease": "0", "groundbreaking": "no", "htkt": "0"},
        "2021-05-20T10:00",
    )
    june = await report(app, INVESTOR_A, "dai-thang", "2021-06", FOUNDED_DONE, "2021-06-18T10:00")
    await report(
        app,
        INVESTOR_A,
        "phu-tuc",
        "2021-06",
        {
            "qhct": "yes",
            "gpmb": "97",
            "groundbreaking": "yes",
            "groundbreaking_date": "2021-02-01",
            "htkt": "40",
            "wastewater": "building",
        },
        "2021-06-25T09:00",
    )  # late: after 00:00 on the 25th
    await report(
        app,
        INVESTOR_B,
        "binh-phu",
        "2021-06",
        {
            "occupancy": "70",
            "htkt_complete": "yes",  # Phụ lục 2 B (unfinished in 2021), reported complete
            "wastewater": "operating",
            "illegal_build": "no",
            "households": "3",
        },
        "2021-06-20T10:00",
        form="operating",
    )
    async with unit_of_work(app.sessions) as session:
        await attach_photo(
            session,
            june,
            image("orange", (120, 90)),
            tmp_path / "data",
            10**7,
            received_at=at("2021-06-18T09:00"),
        )
    return app


def chat_for(app: App, chat_id: str, when: str = "2021-06-26T09:00") -> Chat:
    base = app.deps()
    return Chat(
        Deps(base.sessions, base.config, Clock(at(when))), chat_id=chat_id, channel="telegram"
    )


async def test_summary_numbers(month: App) -> None:
    async with month.sessions() as session:
        summary = await summarise(session, Period(2021, 6), month.deps().calendar)
    t = summary.total
    assert (t.expected, t.received, t.on_time, t.late) == (5, 3, 2, 1)
    by_district = {d: (r.expected, r.received) for d, r in summary.by_district}
    assert by_district == {"": (1, 0), "Huyện Phú Xuyên": (3, 2), "Huyện Thạch Thất": (1, 1)}
    by_kind = {k: (r.expected, r.received, r.late) for k, r in summary.by_reporter}
    assert by_kind == {"department": (1, 0, 0), "district": (1, 0, 0), "investor": (3, 3, 1)}
    targets = {row.code: row for row in summary.targets}
    assert targets["groundbreakings_q1"].actual == 1  # Phú Túc, 01/02/2021
    assert targets["groundbreakings_q2"].actual == 1  # Đại Thắng, 10/05/2021
    assert targets["groundbreakings_q3"].actual == 0
    assert targets["groundbreakings"].actual == 2
    assert targets["infrastructure_completed"].actual == 1
    assert (targets["wastewater_new"].count, targets["wastewater_new"].of) == (1, 42)
    assert str(targets["wastewater_new"].actual) == "2.4"
    assert (targets["wastewater_operating"].count, targets["wastewater_operating"].of) == (1, 35)
    assert targets["new_clusters"].actual == 0 and targets["new_clusters"].met is False
    assert [s.title for s in summary.missing] == [
        "Sở Tài nguyên và Môi trường",
        "UBND Huyện Phú Xuyên",
    ]


async def test_complete_infrastructure_is_each_clusters_latest_answer_else_its_group(
    month: App,
) -> None:
    """Plan I.2's "100 % of operating clusters with complete infrastructure", from the operating
    form: each cluster's latest answer up to the month; one that has never answered counts by
    the registry's group (Phụ lục 2 A complete, B not), and the figure says how many each way."""
    calendar = month.deps().calendar
    codes = await cluster_kinds(month)

    async def full(period: Period) -> TargetRow:
        async with month.sessions() as session:
            summary = await summarise(session, period, calendar)
        return next(t for t in summary.targets if t.code == "operating_full_infrastructure")

    may = await full(Period(2021, 5))  # no report says it yet: the registry's groups
    assert (may.count, may.of, may.reported, may.listed, bool(may.basis)) == (13, 35, 0, 35, True)
    june = await full(Period(2021, 6))  # Bình Phú (B) says complete
    assert (june.count, june.reported, june.listed, str(june.actual)) == (14, 1, 34, "40.0")
    # July: Từ Liêm (A) says not complete; Bình Phú's June answer is still its latest
    await report(
        month,
        INVESTOR_B,
        "tu-liem",
        "2021-07",
        {"occupancy": "100", "htkt_complete": "no"},
        "2021-07-10T09:00",
        form="operating",
    )
    july = await full(Period(2021, 7))
    assert (july.count, july.reported, july.listed, str(july.actual)) == (13, 2, 33, "37.1")
    assert (await full(Period(2021, 6))).count == 14  # June keeps its own answers
    # August: every operating cluster says complete: from reports alone, no note
    for code in sorted(codes["operating"]):
        await report(
            month,
            INVESTOR_B,
            code,
            "2021-08",
            {"htkt_complete": "yes"},
            "2021-08-10T09:00",
            form="operating",
        )
    august = await full(Period(2021, 8))
    assert (august.count, august.reported, august.listed, august.met) == (35, 35, 0, True)
    assert august.basis == ""
    assert august.counted(lambda m: m) == (
        "35 of 35 clusters in the registry; 35 clusters from reports, 0 from the registry"
    )


async def cluster_kinds(app: App) -> dict[str, set[str]]:
    """The registry's cluster codes by group: operating (Phụ lục 2 A and B), founded."""
    async with app.sessions() as session:
        rows = (await session.execute(select(Cluster.code, Cluster.kind))).all()
    out: dict[str, set[str]] = {}
    for code, kind in rows:
        out.setdefault("operating" if kind.startswith("operating") else kind, set()).add(code)
    return out


async def test_tonghop_message_workbook_and_chart(month: App) -> None:
    admin = chat_for(month, ADMIN)
    await admin.say("/tonghop 6/2021")
    text = admin.replies[0].text
    assert "Tổng hợp tháng 06/2021" in text
    assert "Báo cáo: đã nhận 3/5 (60 %); đúng hạn 2, muộn 1." in text
    assert "• Huyện Phú Xuyên: 2/3 (66,7 %)" in text
    assert "• Khởi công Quý I: 1 / 1 ✓" in text and "• Khởi công Quý II: 1 / 23" in text
    # a percentage is over the registry's rows (42 founded, not the plan's 43), said so
    assert "• XLNT đạt chuẩn — CCN xây mới: 2,4 % (1 trên 42 cụm trong danh mục) / 100 %" in text
    # complete infrastructure: Bình Phú's report (B, said complete), the 34 clusters that have
    # not said it by the registry's groups (13 in A), each way counted and said so
    assert (
        "• CCN đang hoạt động có HTKT đồng bộ: 40 % (14 trên 35 cụm trong danh mục; 1 cụm theo "
        "báo cáo, 34 theo danh mục) / 100 %\n"
        "  (cụm chưa báo cáo HTKT đã đồng bộ, hoàn thiện hay chưa thì tính theo danh mục: hoàn "
        "thiện nếu thuộc nhóm đã hoàn thiện hạ tầng (Phụ lục 2 mục A))"
    ) in text
    files = admin.replies[1]
    assert files.file is not None and files.photos
    assert files.photos[0].path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert files.file.name == "bao-cao-2021-06.docx"
    document = Document(str(files.file))  # the report to sign, as DOCX, a type Zalo takes
    written = "\n".join(p.text for p in document.paragraphs)
    assert "Kế hoạch số 68/KH-UBND" in written and "tháng 6/2021" in written
    assert "đã nhận 3 báo cáo (đạt 60 %)" in written  # the reporting rate, from the figures
    assert "Sở Tài nguyên và Môi trường" in written  # who did not report, by name
    workbook_file = admin.replies[2].file
    assert workbook_file is not None and workbook_file.suffix == ".xlsx"
    book = load_workbook(workbook_file)
    assert book.sheetnames == [
        "Tổng hợp",
        "PL1 Nhiệm vụ",
        "PL2 CCN hoạt động",
        "PL3 CCN thành lập mới",
        "Chưa báo cáo",
    ]
    summary = book["Tổng hợp"]
    rows = {r[0]: r for r in summary.iter_rows(min_row=3, values_only=True) if r[0]}
    assert rows["Toàn Thành phố"][1:6] == (5, 3, 2, 1, 0.6)  # the rate: a fraction, shown as %
    assert rows["Huyện Phú Xuyên"][1:3] == (3, 2)
    q2 = next(r for label, r in rows.items() if str(label).startswith("Quý II/2021"))
    assert q2[1:3] == (23.0, 1.0)
    full = next(r for label, r in rows.items() if str(label).startswith("100% cụm công nghiệp"))
    counted = "14 trên 35 cụm trong danh mục; 1 cụm theo báo cáo, 34 theo danh mục"
    assert full[1:4] == (1.0, 0.4, counted)
    assert str(full[5]).startswith("cụm chưa báo cáo HTKT đã đồng bộ, hoàn thiện hay chưa")
    # the appendices: a title block above the header (row 8), no code column (rows by name),
    # percentages as fractions under a % format
    names = await cluster_names(month)
    founded = book["PL3 CCN thành lập mới"]
    assert founded.freeze_panes == "C9" and founded.auto_filter.ref is not None
    cell = row_by_name(founded, names["dai-thang"])
    assert cell["GPMB (%)"] == 1 and cell["HTKT (%)"] == 1
    assert cell["Ngày khởi công"] == datetime(2021, 5, 10)
    assert cell["Trạm XLNT"] == "Hoạt động, đạt chuẩn" and cell["Đúng hạn"] == "Có"
    assert cell["Khởi công (KH)"] == "03/2021"
    phu = row_by_name(founded, names["phu-tuc"])
    assert phu["Đúng hạn"] == "Không" and phu["HTKT (%)"] == 0.4
    vt = row_by_name(founded, names["van-tu"])
    assert vt["Báo cáo kỳ này"] == "chưa có người báo cáo" and vt["Chậm so với KH"] == "Không"
    cb = row_by_name(founded, names["cau-bau-gd2"])
    assert cb["Khởi công (KH)"] == "04/2021" and cb["Chậm so với KH"] == "Có"
    operating = book["PL2 CCN hoạt động"]
    binh = row_by_name(operating, names["binh-phu"])
    assert binh["Lấp đầy (KH, %)"] == 0.6845 and binh["Lấp đầy (báo cáo, %)"] == 0.7
    assert binh["Số hộ phải di dời"] == 3
    missing: list[tuple[Any, ...]] = []  # (district: its group row, title, who owes it)
    district: Any = None
    for r in book["Chưa báo cáo"].iter_rows(min_row=HEADER_ROW + 1, values_only=True):
        if r[0] is None and r[1] and not str(r[1]).startswith("Tổng cộng"):
            district = r[1]
        elif isinstance(r[0], int):
            missing.append((district, r[1], r[3]))
    assert missing == [
        ("Các sở, ngành Thành phố", "Sở Tài nguyên và Môi trường", "Chị Mai"),
        ("Huyện Phú Xuyên", "UBND Huyện Phú Xuyên", "Anh Hùng"),
    ]


HEADER_ROW = 8  # the appendices' table header, under the title block


async def cluster_names(app: App) -> dict[str, str]:
    async with app.sessions() as session:
        rows = await session.execute(select(Cluster.code, Cluster.name))
        return {code: name for code, name in rows.all()}


def row_by_name(sheet: Any, name: str) -> dict[str, Any]:
    """The sheet's row of the cluster `name`, by the header's words."""
    header = [c.value for c in sheet[HEADER_ROW]]
    rows = sheet.iter_rows(min_row=HEADER_ROW + 1, values_only=True)
    return dict(zip(header, next(r for r in rows if r[1] == name), strict=True))


async def test_status_card(month: App) -> None:
    admin = chat_for(month, ADMIN, "2021-06-22T09:00")
    await admin.say("/tinhhinh dai thang")
    [card] = admin.replies
    assert "Cụm công nghiệp làng nghề Đại Thắng" in card.text
    assert "Huyện Phú Xuyên · thành lập giai đoạn 2018–2020" in card.text
    assert "Báo cáo tháng 06/2021: đã nhận (BC-2021-06-dai-thang-1, ngày 18/06/2021)" in card.text
    assert "Số liệu mới nhất (kỳ 06/2021, Chị Lan gửi ngày 18/06/2021)" in card.text
    assert "Đã GPMB được bao nhiêu % diện tích: 100 % (+20)" in card.text
    assert "Khởi công ngày nào: 10/06/2021" not in card.text and "10/05/2021" in card.text
    assert "Bước tiếp theo" not in card.text  # every step of its chain is done
    assert len(card.photos) == 1 and card.photos[0].caption == "18/06/2021"
    await admin.say("/tinhhinh Phú Túc")
    assert "Bước tiếp theo:" in admin.text and "Báo cáo tháng 06/2021: đã nhận" in admin.text
    await admin.say("/tinhhinh van tu")
    assert "Chưa có báo cáo nào." in admin.text
    assert "Bước tiếp theo: Phê duyệt QHCT — UBND Huyện Phú Xuyên." in admin.text
    assert "Chậm so với kế hoạch" not in admin.text  # planned groundbreaking 09/2021
    await admin.say("binh phu")  # a name alone works as well, with its namesakes as buttons
    assert "Tỷ lệ lấp đầy hiện nay là bao nhiêu %: 70 %" in admin.text
    assert "[Cụm CN Bình phú I]" in admin.text


async def test_missing_list(month: App) -> None:
    admin = chat_for(month, ADMIN)
    await admin.say("/chuabaocao")  # on the 26th the month in focus is June
    assert "Chưa báo cáo tháng 06/2021: 2." in admin.text
    assert (
        "Huyện Phú Xuyên (1):" in admin.text
        and "UBND Huyện Phú Xuyên — Anh Hùng (chưa nhắc)" in admin.text
    )
    await admin.say("/chuabaocao 6/2021 phu xuyen")
    assert "Chưa báo cáo tháng 06/2021: 1." in admin.text and "Tài nguyên" not in admin.text


@pytest.mark.parametrize(
    ("chat", "query", "sees"),
    [
        (INVESTOR_A, "dai thang", True),  # their own
        (INVESTOR_A, "binh phu", False),  # someone else's
        (DISTRICT, "phu tuc", True),  # in their district
        (DISTRICT, "binh phu", False),  # in Thạch Thất
        (DEPARTMENT, "dai thang", True),  # TN&MT leases its land
        (DEPARTMENT, "ninh hiep", False),  # no step of theirs there
        (ADMIN, "binh phu", True),
    ],
)
async def test_who_may_see_which_cluster(month: App, chat: str, query: str, sees: bool) -> None:
    person = chat_for(month, chat)
    await person.say("/trogiup")
    await person.say(f"/tinhhinh {query}")
    assert ("Chủ đầu tư:" in person.text) is sees
    if not sees:
        assert "Không tìm thấy cụm công nghiệp nào khớp" in person.text


async def test_who_may_see_the_summary(month: App) -> None:
    district = chat_for(month, DISTRICT)
    await district.say("/tonghop 6/2021")
    assert "Báo cáo: đã nhận 2/3" in district.text and "Thạch Thất" not in district.text
    # not the city's plan against actual: that is Sở Công Thương's consolidated figure
    assert "Kế hoạch và thực hiện" not in district.text and "Khởi công Quý" not in district.text
    assert "do Sở Công Thương tổng hợp" in district.text
    assert all(r.file is None for r in district.replies)  # the workbook is for Sở Công Thương
    await district.say("/chuabaocao 6/2021 Thạch Thất")  # only their own district, whatever asked
    assert "UBND Huyện Phú Xuyên" in district.text
    for chat in (INVESTOR_A, DEPARTMENT):
        other = chat_for(month, chat)
        for command in ("/tonghop", "/chuabaocao"):
            await other.say(command)
            assert "Chỉ Sở Công Thương và UBND quận, huyện" in other.text
    stranger = chat_for(month, STRANGER)
    for text in ("/tinhhinh dai thang", "dai thang", "/tonghop"):
        await stranger.say(text)
        assert "chưa được mời" in stranger.text and "Đại Thắng" not in stranger.text


async def test_workbook_opens_in_libreoffice(month: App, tmp_path: Path) -> None:
    office = shutil.which("soffice") or shutil.which("libreoffice")
    if office is None:
        pytest.skip("LIBREOFFICE NOT INSTALLED: the workbook was not opened in LibreOffice")
    admin = chat_for(month, ADMIN)
    await admin.say("/tonghop 6/2021")
    book = admin.replies[2].file
    assert book is not None
    done = subprocess.run(
        [office, "--headless", "--convert-to", "pdf", "--outdir", str(tmp_path), str(book)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    pdf = tmp_path / (book.stem + ".pdf")
    assert done.returncode == 0 and pdf.exists(), done.stderr
    assert pdf.read_bytes()[:5] == b"%PDF-"
