"""Answers that used to be taken and then broke the draft or every later submit: exponents,
endless digits, figures the database cannot hold, control characters, empty text, years far
away. Each is refused with the question's hint, and a normal report still goes in."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from bot.app import App
from domain import answers
from domain.forms import Question
from handlers.context import Deps
from store.forms import parse_question
from store.models import Report
from tests.dialog import play
from tests.test_dialogs import investor

TODAY = date(2021, 6, 10)


def q(kind: str, **extra: object) -> Question:
    return parse_question({"id": "x", "type": kind, "label": {"vi": "?", "en": "?"}, **extra})


@pytest.mark.parametrize(
    ("question", "typed", "hint"),
    [
        (q("number", min=0), "1e999999", "Vui lòng gửi một số"),
        (q("number", min=0), "1E3", "Vui lòng gửi một số"),
        (q("number"), "NaN", "Vui lòng gửi một số"),
        (q("number"), "-Infinity", "Vui lòng gửi một số"),
        (q("number", min=0), "9" * 5000, "Vui lòng gửi một số"),
        (q("number", min=0), "1000000000000", "Vui lòng gửi một số"),  # beyond Numeric(16, 4)
        (q("number", min=0), "0,00001", "Vui lòng gửi một số"),
        (q("number"), "-1000000000000", "Vui lòng gửi một số"),
        (q("percent"), "1e-999999", "từ 0 đến 100"),
        (q("percent"), "68,456", "từ 0 đến 100"),  # at most two decimals
        (q("percent"), "0." + "0" * 5000 + "1", "từ 0 đến 100"),
        (q("text"), "", "không quá 1000 ký tự"),
        (q("text"), "  \x00 \x01 ", "không quá 1000 ký tự"),
        (q("text", max_length=5), "quá dài rồi", "không quá 5 ký tự"),
        (q("date"), "0100-01-01", "ngày/tháng/năm"),
        (q("date"), "9999-12-31", "ngày/tháng/năm"),
        (q("date"), "1/1/0100", "ngày/tháng/năm"),
        (q("date"), "1/1/1999", "ngày/tháng/năm"),
        (q("month"), "6/9999", "tháng/năm"),
        (q("month"), "0100-06", "tháng/năm"),
    ],
)
def test_refused_with_the_hint(question: Question, typed: str, hint: str) -> None:
    with pytest.raises(answers.Unreadable):
        answers.parse(question, typed, TODAY)
    assert hint in answers.hint(question, "vi")


@pytest.mark.parametrize(
    ("question", "typed", "stored"),
    [
        (q("number", min=0), "-0", "0"),
        (q("percent"), "-0", "0"),
        (q("number", min=0), "999999999999", "999999999999"),
        (q("number", min=0), "12,5", "12.5"),
        (q("percent"), "100,00", "100"),
        (q("text"), "Lô B3\x00, 200 m2\r\nđã xử lý\u200b", "Lô B3, 200 m2\nđã xử lý\u200b"),
        (q("date"), "1/1/2000", "2000-01-01"),
        (q("date"), "2100-12-31", "2100-12-31"),
    ],
)
def test_still_read(question: Question, typed: str, stored: str) -> None:
    assert answers.parse(question, typed, TODAY) == stored


async def test_bad_figures_are_refused_and_the_report_still_goes_in(deps: Deps, app: App) -> None:
    chat = await investor(deps, code="binh-phu", chat_id="2002")
    occupancy = "từ 0 đến 100 | Tỷ lệ lấp đầy hiện nay"
    households = "Không có thì nhập 0 | phải di dời"
    await play(
        chat,
        [
            ("/baocao", "Tỷ lệ lấp đầy hiện nay"),
            ("1e-999999", occupancy),
            ("1e2", occupancy),
            ("NaN", occupancy),
            ("68,456", occupancy),
            ("6" * 5000, occupancy),
            ("68.45", "HTKT của cụm đã được đầu tư xây dựng đồng bộ"),
            ("[Không]", "Hạng mục HTKT nào"),
            ("\x00", "tối đa 1000 ký tự | Hạng mục HTKT nào"),
            ("Đường nội bộ\x00, thoát nước", "Trạm XLNT"),
            ("[Có trạm, chưa đạt chuẩn]", "xây dựng trái phép"),
            ("[Không]", "sử dụng đất trái phép"),
            ("[Không]", "phải di dời"),
            ("1e999999", households),
            ("9" * 5000, households),
            ("1000000000000", households),
            ("-0", "Chuyển đổi quản lý"),
            ("[Đang rà soát]", "Giá dịch vụ chung"),
            ("[Chưa xây dựng giá]", "Quy chế quản lý"),
            ("[Chưa xây dựng]", "duy tu HTKT"),
            ("[Không]", "Khó khăn"),
            ("[Bỏ qua]", "Kiến nghị"),
            ("[Bỏ qua]", "ảnh"),
            ("[Xong]", "68,45 % | 0 hộ | Đường nội bộ, thoát nước | !-0"),
            ("[Gửi báo cáo]", "Đã nhận báo cáo | !Xin lỗi"),
        ],
    )
    async with app.sessions() as session:
        report = await session.scalar(select(Report).where(Report.subject == "cluster:binh-phu"))
        assert report is not None
        values = report.answers
    assert values["households"] == {"v": "0"}
    assert values["htkt_unfinished"] == {"v": "Đường nội bộ, thoát nước"}
