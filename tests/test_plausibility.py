"""Plausibility (issue 15, item 3): an answer that is doubtful — a figure that jumped more than its
question's `max_jump` since the last report, a date that has happened set in the future or
before the clusters were founded — is asked back once with the reason; confirmed, an optional
reason is asked, the answer is kept with its flag and the reviewer sees the flag. The limits are
form data (store/forms/*.yaml), refused with a clear message when they cannot hold. A plausible
report is asked nothing new (tests/test_dialogs.py's tables, unchanged). On SQLite and
PostgreSQL through the `deps` fixture."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import select

from bot.app import App
from domain.draft import Doubt, doubt
from handlers.context import Deps
from store.forms import FOLDER, load_forms, parse_form
from store.models import Report
from tests.dialog import Chat, file_may_report, finish, play
from tests.test_dialogs import investor
from tests.test_review import admin_chat

REFUSED = "Xin lỗi, lựa chọn này không dùng được ở đây."
JUMP = "tăng từ 20 % lên 90 % trong một tháng — có đúng không?"
OPTIONAL_REASON = "Nếu muốn, vui lòng ghi ngắn gọn lý do | Bỏ qua"

# June's report of Đại Thắng, whose May report said 20 % cleared: 90 % is asked back.
GPMB_JUMP = [
    ("/baocao", "QHCT 1/500"),
    ("[Có]", "Phương án bồi thường"),
    ("[Có]", "Đã GPMB | Báo cáo lần trước: 20 %"),
    ("90", f"Đã GPMB được bao nhiêu % diện tích {JUMP} | [Đúng vậy] | [Nhập lại]"),
    ("[Nhập lại]", "Đã GPMB | !có đúng không"),
    ("90", JUMP),  # asked again for the same figure typed again
    ("[Đúng vậy]", OPTIONAL_REASON),
    ("Đã có quyết định thu hồi đất cả khu", "Đã chuyển kinh phí GPMB"),
]

# The groundbreaking date of a June 2021 report (today 10/06/2021).
TO_THE_DATE = [
    ("/baocao", "QHCT 1/500"),
    ("[Có]", "Phương án bồi thường"),
    ("[Có]", "Đã GPMB"),
    ("60", "Đã chuyển kinh phí GPMB"),
    ("[Đã chuyển đủ]", "Đất lúa"),
    ("[Không cần]", "Đã khởi công"),
    ("[Có]", "Khởi công ngày nào?"),
]
DATES = [
    ("15/7/2021", "Khởi công ngày nào: 15/07/2021 là ngày trong tương lai — có đúng không?"),
    ("[Nhập lại]", "Khởi công ngày nào?"),
    ("30/6/2021", "HTKT"),  # within the period: not asked back
    ("/huy", "Đã tạm dừng"),
    ("/baocao", "HTKT"),
]
BEFORE_FOUNDING = [
    ("[✏️ 7]", "Khởi công ngày nào?"),
    ("15/6/2017", "15/06/2017 là trước khi cụm được thành lập — có đúng không?"),
    ("[Đúng vậy]", OPTIONAL_REASON),
    ("[Bỏ qua]", "kiểm tra lại báo cáo | 15/06/2017"),
]


async def june_report(app: App) -> Report:
    async with app.sessions() as session:
        report = await session.scalar(select(Report).where(Report.period == "2021-06"))
    assert report is not None
    return report


async def forge(chat: Chat, payload: str) -> str:
    return await chat.send(chat.incoming(payload=payload))


async def test_a_jump_is_asked_back_kept_with_its_flag_and_shown_to_the_reviewer(
    deps: Deps, app: App
) -> None:
    chat = await investor(deps)
    await file_may_report(deps, {"gpmb": {"v": "20"}})
    await play(chat, GPMB_JUMP)
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    report = await june_report(app)
    assert report.answers["gpmb"] == {
        "v": "90",
        "reason": "Đã có quyết định thu hồi đất cả khu",
        "flag": "jump",
    }
    assert "flag" not in report.answers["qhct"]
    admin = await admin_chat(deps)
    await play(
        admin,
        [
            ("/duyet", "BC-202106-"),
            (
                "[BC-202106]",
                "3. Đã GPMB được bao nhiêu % diện tích? — 90 % "
                "(lý do: Đã có quyết định thu hồi đất cả khu) ⚠ thay đổi lớn trong một tháng "
                "| !1. QHCT 1/500 đã được phê duyệt chưa? — Có ⚠",
            ),
        ],
    )


async def test_a_plausible_step_and_a_skipped_reason(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    await file_may_report(deps, {"gpmb": {"v": "20"}, "htkt": {"v": "10"}})
    await play(
        chat,
        [
            ("/baocao", "QHCT 1/500"),
            ("[Có]", "Phương án bồi thường"),
            ("[Có]", "Đã GPMB"),
            ("80", "Đã chuyển kinh phí GPMB | !có đúng không"),  # +60: at the limit, taken
            ("[Đã chuyển đủ]", "Đất lúa"),
            ("[Không cần]", "Đã khởi công"),
            ("[Có]", "Khởi công ngày nào?"),
            ("1/6/2021", "HTKT | Báo cáo lần trước: 10 %"),
            ("75", "HTKT đã hoàn thành bao nhiêu % tăng từ 10 % lên 75 % trong một tháng"),
            ("[Đúng vậy]", OPTIONAL_REASON),
            ("[Bỏ qua]", "Đã tiếp nhận bao nhiêu dự án"),
        ],
    )
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    report = await june_report(app)
    assert report.answers["gpmb"] == {"v": "80"}
    assert report.answers["htkt"] == {"v": "75", "flag": "jump"}


async def test_dates_in_the_future_or_before_the_founding(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    await play(chat, TO_THE_DATE + DATES)
    await finish(chat)
    await play(chat, BEFORE_FOUNDING)
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    report = await june_report(app)
    assert report.answers["groundbreaking_date"] == {"v": "2017-06-15", "flag": "early"}
    admin = await admin_chat(deps)
    await play(
        admin,
        [("/duyet", "BC-202106-"), ("[BC-202106]", "15/06/2017 ⚠ trước khi thành lập cụm")],
    )


async def test_a_date_kept_in_the_future_with_a_reason(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    await play(
        chat,
        [
            *TO_THE_DATE,
            ("1/1/2022", "là ngày trong tương lai"),
            ("[Đúng vậy]", OPTIONAL_REASON),
            ("Ngày dự kiến", "HTKT"),
        ],
    )
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    report = await june_report(app)
    assert report.answers["groundbreaking_date"] == {
        "v": "2022-01-01",
        "reason": "Ngày dự kiến",
        "flag": "future",
    }


async def test_forged_buttons_while_asked_back(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    await file_may_report(deps, {"gpmb": {"v": "20"}})
    await play(chat, GPMB_JUMP[:4])
    for payload in ("back:gpmb:maybe", "back:qhct:yes", "back:qhct:no", "back:gpmb", "back:"):
        answer = await forge(chat, payload)
        assert REFUSED in answer and JUMP in answer, chat.log()
    await play(chat, [("90", JUMP), ("[Đúng vậy]", OPTIONAL_REASON)])
    for payload in ("skip:qhct", "back:gpmb:yes", "skip:gpmb:x", "submit"):
        answer = await forge(chat, payload)
        assert REFUSED in answer and "Nếu muốn, vui lòng ghi" in answer, chat.log()
    await play(chat, [("[Bỏ qua]", "Đã chuyển kinh phí GPMB")])


async def test_a_figure_that_went_down_still_needs_its_reason(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    await file_may_report(deps, {"gpmb": {"v": "90"}})
    await play(
        chat,
        [
            ("/baocao", "QHCT 1/500"),
            ("[Có]", "Phương án bồi thường"),
            ("[Có]", "Đã GPMB"),
            ("10", "giảm từ 90 % xuống 10 % | Số liệu này đúng không? | [Đúng, số liệu giảm]"),
            ("[Đúng, số liệu giảm]", "Vui lòng ghi ngắn gọn lý do | !Bỏ qua"),
        ],
    )
    answer = await forge(chat, "skip:gpmb")  # the reason of a figure gone down is required
    assert REFUSED in answer and "Vui lòng ghi ngắn gọn lý do" in answer, chat.log()
    await play(chat, [("Đo lại", "Đã chuyển kinh phí GPMB")])


# --- the rule and the form's data -----------------------------------------------------------


def test_the_rule() -> None:
    questions = {q.id: q for q in load_forms()["founded"].questions}
    gpmb, when = questions["gpmb"], questions["groundbreaking_date"]
    june_30 = date(2021, 6, 30)
    assert doubt(gpmb, "20", "80", june_30) is None
    assert doubt(gpmb, "20", "80.5", june_30) is Doubt.JUMP
    assert doubt(gpmb, "20", "10", june_30) is Doubt.DOWN
    assert doubt(gpmb, None, "100", june_30) is None  # no earlier report: nothing to compare
    assert doubt(when, None, "2021-06-30", june_30) is None
    assert doubt(when, None, "2021-07-01", june_30) is Doubt.FUTURE
    assert doubt(when, None, "2018-01-01", june_30) is None
    assert doubt(when, None, "2017-12-31", june_30) is Doubt.EARLY
    occupancy = {q.id: q for q in load_forms()["operating"].questions}["occupancy"]
    assert occupancy.max_jump == Decimal(30)
    assert doubt(occupancy, "80", "45", june_30) is Doubt.JUMP  # either way: not monotonic


def founded(edit: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The founded form's data, questions changed by `edit` (id → fields)."""
    data: dict[str, Any] = yaml.safe_load((FOLDER / "founded.yaml").read_text(encoding="utf-8"))
    for q in data["questions"]:
        q.update(edit.get(q["id"], {}))
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"qhct": {"max_jump": 10}}, "qhct: max_jump is for percent and number questions"),
        ({"gpmb": {"max_jump": 0}}, "gpmb: max_jump 0 is not a positive number"),
        ({"gpmb": {"max_jump": -5}}, "gpmb: max_jump -5 is not a positive number"),
        ({"gpmb": {"max_jump": 100}}, "gpmb: max_jump 100 is 100 points or more"),
        ({"gpmb": {"max_jump": "lots"}}, "max_jump"),
        ({"gpmb": {"not_future": True}}, "gpmb: not_future and not_before are for date"),
        ({"qhct": {"not_before": "2018-01-01"}}, "qhct: not_future and not_before are for date"),
        ({"groundbreaking_date": {"not_before": "soon"}}, "not_before"),
    ],
)
def test_a_limit_that_cannot_hold_is_refused(edit: dict[str, dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_form(founded(edit))


def test_the_limits_are_the_forms_data() -> None:
    form = parse_form(founded({"gpmb": {"max_jump": 25}, "groundbreaking_date": {}}))
    gpmb = {q.id: q for q in form.questions}["gpmb"]
    assert gpmb.max_jump == Decimal(25)
    assert doubt(gpmb, "20", "50", date(2021, 6, 30)) is Doubt.JUMP
