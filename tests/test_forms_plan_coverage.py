"""What Kế hoạch 68 asks of every cluster's investor (section II, III.9, Phụ lục 1–3) and the
cluster forms now collect: whether an operating cluster's infrastructure is complete (the plan's
target I.2), the service prices as stages (investor → Sở Công Thương → the city),
the rules for public services and utilities, the upkeep of the infrastructure, illegal land use
beside illegal construction, and for a cluster being built the projects it has taken in. Each is
asked where it applies, stored, shown in words in the month's workbook and on the cluster's card;
an answer of the yes/no the service prices were before still reads as what it meant."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from pydantic import ValidationError
from sqlalchemy import select

from bot.app import App
from domain.calendar import Period
from domain.roles import Role
from handlers.context import Deps
from reports.summary import summarise
from reports.workbook import build
from store.db import unit_of_work
from store.forms import FOLDER, load_forms, parse_question
from store.models import Cluster, Person, Report
from tests.dialog import Chat, file_may_report, play
from tests.records import BROKE_GROUND
from tests.test_dialogs import investor, invited_admin

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
PLAN = (FOLDER.parent / "registry" / "ke-hoach-68.txt").read_text(encoding="utf-8").splitlines()
HEADER_ROW = 8  # the appendices' header, under the title block
OLD_NO = {"value": "no", "vi": "Chưa được phê duyệt", "en": "Not yet approved"}

# Each new question and the plan's words it comes from: (form, question, line, words).
SOURCES = [
    ("operating", "htkt_complete", 37, "đang hoạt động được đầu tư xây dựng đồng bộ hạ tầng kỹ"),
    ("operating", "htkt_complete", 316, "CỤM CÔNG NGHIỆP ĐÃ HOÀN THIỆN HẠ TẦNG"),
    ("operating", "htkt_complete", 348, "thực hiện hoàn thiện đồng bộ các công trình, hạng mục"),
    ("operating", "illegal_land", 57, "Quản lý, theo dõi việc sử dụng đất, xây dựng trái phép"),
    ("operating", "illegal_land", 201, "Quản lý, theo dõi việc sử dụng đất, xây dựng trái phép"),
    ("operating", "service_prices", 321, "Xây dựng giá dịch vụ chung, giá dịch vụ xử lý"),
    ("operating", "service_prices", 320, "Thẩm định, trình UBND thành phố phê duyệt giá dịch vụ"),
    ("operating", "utility_rules", 321, "Quy chế quản lý các dịch vụ công cộng, tiện ích"),
    ("operating", "maintenance", 321, "Cải tạo, nâng cấp, duy tu bảo dưỡng các công trình"),
    ("operating", "maintenance", 310, "Cải tạo nâng cấp, duy tu bảo dưỡng"),
    ("founded", "projects", 231, "kêu gọi, thu hút, tiếp nhận dự án đầu tư vào cụm"),
    ("founded", "projects", 307, "Kêu gọi, thu hút, tiếp nhận dự án đầu tư vào cụm"),
    ("founded", "utility_rules", 227, "Quy chế quản lý các dịch vụ công cộng, tiện ích"),
    ("founded", "service_prices", 227, "Giá dịch vụ chung, giá dịch vụ xử lý nước thải"),
    ("founded", "service_prices", 306, "Giá dịch vụ chung, giá dịch vụ xử lý nước thải"),
]


@pytest.mark.parametrize(("form", "qid", "line", "words"), SOURCES)
def test_each_new_question_is_the_plans_and_a_workbook_column(
    form: str, qid: str, line: int, words: str
) -> None:
    assert words in PLAN[line - 1]
    question = {q.id: q for q in load_forms()[form].questions}[qid]
    assert question.column is not None  # Sở Công Thương sees it in the month's workbook


def test_service_prices_are_the_plans_stages_in_order() -> None:
    """Drafted by the investor, appraised by Sở Công Thương, approved by the city (Phụ lục 2,
    lines 320–321); a stage may not go back unasked."""
    for form in ("founded", "operating"):
        question = {q.id: q for q in load_forms()[form].questions}["service_prices"]
        assert question.type == "choice" and question.monotonic
        labels = [c.vi for c in question.choices]
        assert labels == [
            "Chưa xây dựng giá",
            "Chủ đầu tư đã xây dựng giá",
            "Sở Công Thương đã thẩm định",
            "UBND Thành phố đã phê duyệt",
        ]


async def sheet_rows(app: App, path: Path, sheet: str) -> dict[str, dict[str, Any]]:
    """June 2021's workbook, as built for /tonghop: the sheet's rows by cluster name."""
    async with unit_of_work(app.sessions) as session:
        calendar = app.deps().calendar
        summary = await summarise(session, Period(2021, 6), calendar)
        await build(session, summary, calendar, path, datetime(2021, 6, 26, 9, tzinfo=HANOI))
    ws = load_workbook(path)[sheet]
    header = [str(c.value) for c in ws[HEADER_ROW]]
    return {
        str(r[1]): dict(zip(header, r, strict=True))
        for r in ws.iter_rows(min_row=HEADER_ROW + 1, values_only=True)
        if r[1]
    }


async def name_of(app: App, code: str) -> str:
    async with app.sessions() as session:
        name = await session.scalar(select(Cluster.name).where(Cluster.code == code))
    assert name is not None
    return name


# An operating cluster's report through the new questions: land used illegally (its detail
# asked), the prices appraised, the rules approved, upkeep this month (its works asked).
OPERATING = [
    ("/baocao", "Tỷ lệ lấp đầy"),
    ("70", "HTKT của cụm đã được đầu tư xây dựng đồng bộ, hoàn thiện chưa?"),
    ("[Có]", "Trạm XLNT | !Hạng mục HTKT nào"),  # complete: what is unfinished is not asked
    ("[Hoạt động, đạt chuẩn]", "xây dựng trái phép"),
    ("[Không]", "Trong tháng có sử dụng đất trái phép không? | !Vi phạm ở đâu"),
    ("[Có]", "Sử dụng đất trái phép ở đâu, diện tích, đã xử lý thế nào?"),
    ("Lô C2, 500 m2 làm bãi xe, đã lập biên bản", "phải di dời"),
    ("0", "Chuyển đổi quản lý"),
    ("[Không áp dụng]", "Giá dịch vụ chung, giá XLNT đến bước nào?"),
    ("[Sở Công Thương đã thẩm định]", "Quy chế quản lý dịch vụ công cộng, tiện ích"),
    ("[Đang xây dựng]", "Trong tháng có cải tạo, nâng cấp, duy tu HTKT không?"),
    ("[Có]", "Cải tạo, duy tu hạng mục nào?"),
    ("Sửa 300 m đường nội bộ", "Khó khăn"),
    ("[Bỏ qua]", "Kiến nghị"),
    ("[Bỏ qua]", "ảnh"),
    ("[Xong]", "Lô C2 | Sở Công Thương đã thẩm định | Sửa 300 m"),
    ("[Gửi báo cáo]", "Đã nhận báo cáo"),
]

# A cluster being built: before any project the rules are not asked, and none of the operating
# clusters' questions (illegal land use, upkeep) is.
FOUNDED_NO_PROJECT = [
    ("/baocao", "QHCT"),
    ("[Có]", "Phương án bồi thường"),
    ("[Có]", "Đã GPMB"),
    ("40", "kinh phí GPMB"),
    ("[Đã chuyển một phần]", "Đất lúa"),
    ("[Không cần]", "Đã khởi công"),
    ("[Không]", "Đã tiếp nhận bao nhiêu dự án đầu tư vào cụm?"),
    ("0", "Giá dịch vụ chung, giá XLNT đến bước nào? | !Quy chế quản lý"),
    ("[Chưa xây dựng giá]", "Trạm XLNT"),
    ("[Chưa xây dựng]", "Khó khăn | !sử dụng đất trái phép | !duy tu"),
    ("[Bỏ qua]", "Kiến nghị"),
    ("[Bỏ qua]", "ảnh"),
    ("[Xong]", "0 dự án | Chưa xây dựng giá"),
    ("[Gửi báo cáo]", "Đã nhận báo cáo"),
]


async def test_answers_are_stored_and_in_the_months_workbook_in_words(
    deps: Deps, app: App, tmp_path: Path
) -> None:
    operating = await investor(deps, code="binh-phu", chat_id="4001")
    await play(operating, OPERATING)
    founded = await investor(deps, code="van-tu", chat_id="4002")
    await play(founded, FOUNDED_NO_PROJECT)
    async with app.sessions() as session:
        reports = {r.subject.ref: r.answers for r in await session.scalars(select(Report))}
    binh = reports["binh-phu"]
    assert binh["htkt_complete"] == {"v": "yes"} and "htkt_unfinished" not in binh
    assert binh["illegal_land"] == {"v": "yes"} and binh["service_prices"] == {"v": "appraised"}
    assert binh["land_detail"] == {"v": "Lô C2, 500 m2 làm bãi xe, đã lập biên bản"}
    assert binh["utility_rules"] == {"v": "drafting"} and binh["maintenance"] == {"v": "yes"}
    phu = reports["van-tu"]
    assert phu["projects"] == {"v": "0"} and "utility_rules" not in phu
    assert phu["service_prices"] == {"v": "not_drafted"} and "illegal_land" not in phu

    pl2 = (await sheet_rows(app, tmp_path / "a.xlsx", "PL2 CCN hoạt động"))[
        await name_of(app, "binh-phu")
    ]
    assert pl2["Xây dựng trái phép"] == "Không" and pl2["Sử dụng đất trái phép"] == "Có"
    assert pl2["Giá dịch vụ chung, giá XLNT"] == "Sở Công Thương đã thẩm định"
    assert pl2["Quy chế dịch vụ công cộng"] == "Đang xây dựng"
    assert pl2["Cải tạo, duy tu HTKT"] == "Có" and pl2["HTKT đồng bộ, hoàn thiện"] == "Có"
    pl3 = (await sheet_rows(app, tmp_path / "b.xlsx", "PL3 CCN thành lập mới"))[
        await name_of(app, "van-tu")
    ]
    assert pl3["Số dự án đã tiếp nhận"] == 0  # a number, as the form's other numbers
    assert pl3["Giá dịch vụ chung, giá XLNT"] == "Chưa xây dựng giá"
    assert pl3["Quy chế dịch vụ công cộng"] is None  # not asked: no project yet


MAY = {
    **BROKE_GROUND,
    "htkt": "50",
    "projects": "2",
    "utility_rules": "drafting",
    "service_prices": "approved",
    "wastewater": "building",
}


async def to_question(chat: Chat, words: str) -> None:
    """Answer until the question with `words` is asked: last month's answer where there is
    one, else skip, else the first button."""
    for _ in range(30):
        if words in chat.text:
            return
        labels = [b.label for b in chat.buttons]
        chosen = next(
            (p for p in ("Không thay đổi", "Bỏ qua", "Xong", "Không") if p in labels), None
        )
        if chosen or labels:
            await chat.tap(chosen or labels[0])
        else:
            await chat.say("0")
    raise AssertionError(f"{words!r} never asked\n{chat.log()}")


async def test_a_stage_going_back_is_asked_back_with_a_reason(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    await file_may_report(deps, {k: {"v": v} for k, v in MAY.items()})
    await chat.say("/baocao")
    await to_question(chat, "Đã tiếp nhận bao nhiêu dự án")
    await play(
        chat,
        [
            ("3", "Quy chế quản lý | Báo cáo lần trước: Đang xây dựng"),  # 3 projects now
            ("[Đã phê duyệt]", "Giá dịch vụ chung | Báo cáo lần trước: UBND Thành phố đã phê"),
            (
                "[Chủ đầu tư đã xây dựng giá]",
                "báo cáo trước là «UBND Thành phố đã phê duyệt», nay là «Chủ đầu tư đã xây "
                "dựng giá» — lùi lại | [Đúng, đã lùi lại] | [Nhập lại]",
            ),
            ("[Đúng, đã lùi lại]", "lý do"),
            ("Giá được xây dựng lại theo quy định mới", "Trạm XLNT"),
        ],
    )
    await to_question(chat, "kiểm tra lại")
    assert "Chủ đầu tư đã xây dựng giá (lý do: Giá được xây dựng lại" in chat.text
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    async with app.sessions() as session:
        june = await session.scalar(select(Report).where(Report.period == "2021-06"))
    assert june is not None
    assert june.answers["service_prices"] == {
        "v": "drafted",
        "reason": "Giá được xây dựng lại theo quy định mới",
    }
    assert june.answers["projects"] == {"v": "3"}
    assert june.answers["utility_rules"] == {"v": "approved"}  # forward: nothing asked


async def test_a_yes_or_no_sent_before_the_stages_still_reads_as_it_meant(
    deps: Deps, app: App, tmp_path: Path
) -> None:
    """Reports sent when the service prices were a yes/no ("Đã duyệt giá dịch vụ chung, giá
    XLNT chưa?") keep that answer: the workbook and the card say it in words, and the next
    report asks for the stage instead of offering it unchanged."""
    chat = await investor(deps, code="binh-phu", chat_id="4003")
    async with unit_of_work(app.sessions) as session:
        cluster = await session.scalar(select(Cluster).where(Cluster.code == "binh-phu"))
        person = await session.scalar(select(Person).where(Person.role == Role.INVESTOR))
        assert cluster is not None and person is not None
        session.add(
            Report(
                reference="BC-202106-00001",
                subject="cluster:binh-phu",
                cluster_id=cluster.id,
                period="2021-06",
                form="operating",
                form_version=1,
                version=1,
                answers={
                    "occupancy": {"v": "70"},
                    "illegal_build": {"v": "no"},
                    "service_prices": {"v": "no"},
                },
                submitted_at=datetime(2021, 6, 8, 9, tzinfo=HANOI),
                submitted_by_person_id=person.id,
                channel="telegram",
                deadline_at=datetime(2021, 6, 25, tzinfo=HANOI),
                on_time=True,
            )
        )
    row = (await sheet_rows(app, tmp_path / "c.xlsx", "PL2 CCN hoạt động"))[
        await name_of(app, "binh-phu")
    ]
    assert row["Giá dịch vụ chung, giá XLNT"] == "Chưa được phê duyệt"
    assert row["Sử dụng đất trái phép"] is None  # not asked then: an empty cell

    admin = await invited_admin(deps, "4004")
    await admin.say("/tinhhinh binh phu")
    assert "Chưa được phê duyệt" in admin.text and ": no" not in admin.text

    await chat.say("/baocao")  # a correction of June: the stage is asked, "no" is not offered
    await to_question(chat, "Giá dịch vụ chung, giá XLNT đến bước nào?")
    assert "Không thay đổi" not in chat.text and "Báo cáo lần trước" not in chat.text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"type": "yesno", "monotonic": True}, "monotonic is for percent, number and choice"),
        ({"type": "text", "formerly": [OLD_NO]}, "formerly is for choice questions, not text"),
        (
            {"type": "choice", "choices": [OLD_NO, {"value": "yes", "vi": "C", "en": "C"}]},
            "a choice value is given twice",
        ),
    ],
)
def test_a_stage_question_that_cannot_hold_is_refused(extra: dict[str, Any], message: str) -> None:
    data = {
        "id": "x",
        "label": {"vi": "?", "en": "?"},
        "choices": [OLD_NO, {"value": "b", "vi": "B", "en": "B"}],
        "formerly": [{"value": "no", "vi": "Chưa", "en": "Not yet"}],
        **extra,
    }
    if data["type"] != "choice":
        del data["choices"]
    with pytest.raises(ValidationError, match=message):
        parse_question(data)
