"""Forged button payloads (issue "Trust", row 6). A Telegram client can send any callback data,
so a payload is read like typed text: a value the question would not take, a button that was
never offered, a reminder for someone else's cluster or for December 2099 is refused politely,
nothing is stored, the current question is asked again, and the report still goes in."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select

from bot.app import App
from domain.forms import Question, expand
from domain.roles import Role
from handlers import reporting
from handlers.context import Deps
from store.db import unit_of_work
from store.forms import load_forms
from store.models import PaperReceipt, Person, Report, ReportDraft
from tests.dialog import Chat, Clock, file_may_report, finish, play
from tests.test_dialogs import HANOI, investor, invite

REFUSED = "Xin lỗi, lựa chọn này không dùng được ở đây"
AGAIN = "Một số câu trả lời không hợp lệ"
TODAY = date(2021, 6, 10)


async def forge(chat: Chat, payload: str) -> str:
    return await chat.send(chat.incoming(payload=payload))


async def refused(chat: Chat, payloads: list[str], *expected: str) -> None:
    """Each payload is refused with the polite words, and the expected pieces shown again."""
    for payload in payloads:
        answer = await forge(chat, payload)
        for piece in (REFUSED, *expected):
            assert piece in answer, f"{payload!r} → expected {piece!r}\n{chat.log()}"
        assert "Xin lỗi, có lỗi" not in answer, chat.log()


def questions(form: str) -> dict[str, Question]:
    return {q.id: q for q in expand(load_forms()[form])}


def invalid(form: str, answers: dict[str, Any]) -> dict[str, Any]:
    """The stored answers their question would not take."""
    known = questions(form)
    return {
        qid: entry
        for qid, entry in answers.items()
        if qid in known
        and known[qid].type != "photos"
        and not reporting.valid_answer(known[qid], entry.get("v"), TODAY)
    }


async def drafts(app: App) -> list[ReportDraft]:
    async with app.sessions() as session:
        return list((await session.scalars(select(ReportDraft))).all())


async def reports(app: App) -> list[Report]:
    async with app.sessions() as session:
        return list((await session.scalars(select(Report))).all())


async def test_forged_answers_are_refused_and_the_report_still_goes_in(
    deps: Deps, app: App
) -> None:
    chat = await investor(deps)
    await play(chat, [("/baocao", "QHCT 1/500")])
    await refused(
        chat,
        [
            "a:qhct:maybe",  # yes/no takes only yes or no
            "a:qhct:yes:x",
            "a:qhct:1",
            "a:qhct:",
            "keep:qhct",  # no earlier report to keep
            "skip:qhct",  # required
            "done:qhct",  # not the photos question
            "back:qhct:yes",  # no figure went down
            "submit",  # nothing to submit yet
            "edit:1",
            "subject:0",
            "a:gpmb:50",  # a valid-looking value of another question
            "a:gpmb_funds:1",
            "keep:gpmb",
            "bogus",
            "a",
            ":::",
        ],
        "QHCT 1/500",
    )
    [draft] = await drafts(app)
    assert "qhct" not in draft.answers and not await reports(app)
    await play(chat, [("[Có]", "Phương án bồi thường"), ("[Có]", "Đã GPMB")])
    await refused(chat, ["a:gpmb:50", "keep:gpmb", "skip:gpmb", "a:gpmb:yes"], "Đã GPMB")
    await play(chat, [("60", "Đã chuyển kinh phí GPMB")])
    await refused(
        chat,
        [
            "a:gpmb_funds:-1",  # Python would take the last choice
            "a:gpmb_funds:3",  # three choices: 0, 1, 2
            "a:gpmb_funds:٢",  # an Arabic-Indic two
            "a:gpmb_funds:+1",
            "a:gpmb_funds: 1",
            "a:gpmb_funds:1_0",
            "a:gpmb_funds:partly",
            "a:gpmb_funds:99999999999999999999999",
        ],
        "Đã chuyển kinh phí GPMB",
    )
    [draft] = await drafts(app)
    assert "gpmb_funds" not in draft.answers
    await finish(chat)
    await refused(
        chat,
        ["edit:0", "edit:99", "edit:²", "edit:٣", "edit:-1", "edit:", "edit:1:x", "a:qhct:maybe"],
        "kiểm tra lại báo cáo",
    )
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    [report] = await reports(app)
    assert report.answers["qhct"] == {"v": "yes"}
    assert report.answers["gpmb_funds"] == {"v": "not_transferred"}
    assert not invalid("founded", report.answers)


async def test_keep_needs_an_earlier_answer_that_is_still_valid(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    # May's report, filed when the form still allowed what it no longer does
    await file_may_report(
        deps,
        {
            "qhct": {"v": "maybe"},
            "compensation": {"v": "yes"},
            "gpmb": {"v": "150"},
            "gpmb_funds": {"v": "half"},
        },
    )
    await play(chat, [("/baocao", "QHCT 1/500 | !Không thay đổi")])  # nothing valid to keep
    await refused(chat, ["keep:qhct"], "QHCT 1/500")
    await play(chat, [("[Không]", "Phương án bồi thường | Không thay đổi")])
    await play(chat, [("[Không thay đổi]", "Đã GPMB | !Không thay đổi")])
    await refused(chat, ["keep:gpmb"], "Đã GPMB")
    await play(chat, [("100", "Đã chuyển kinh phí GPMB | !Không thay đổi")])
    await refused(chat, ["keep:gpmb_funds"], "Đã chuyển kinh phí GPMB")
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    june = [r for r in await reports(app) if r.period == "2021-06"]
    assert [r.answers["compensation"] for r in june] == [{"v": "yes"}]
    assert not invalid("founded", june[0].answers)


async def test_a_draft_spoiled_before_the_fix_is_asked_again_not_submitted(
    deps: Deps, app: App
) -> None:
    chat = await investor(deps)
    await play(chat, [("/baocao", "QHCT")])
    await finish(chat)
    [draft] = await drafts(app)
    async with unit_of_work(deps.sessions) as session:
        spoiled = await session.get(ReportDraft, draft.id)
        assert spoiled is not None
        spoiled.answers = {**spoiled.answers, "qhct": {"v": "maybe"}, "gpmb": {"v": None}}
    await play(
        chat,
        [
            ("[Gửi báo cáo]", f"{AGAIN} | QHCT 1/500 | !Đã nhận báo cáo"),
            ("[Có]", "Đã GPMB"),
            ("45", "kiểm tra lại báo cáo"),
            ("[Gửi báo cáo]", "Đã nhận báo cáo"),
        ],
    )
    [report] = await reports(app)
    assert report.answers["qhct"] == {"v": "yes"} and report.answers["gpmb"] == {"v": "45"}


async def test_reminder_buttons_only_open_own_reports_of_open_or_past_months(
    deps: Deps, app: App
) -> None:
    chat = await investor(deps)
    await refused(
        chat,
        [
            "report:cluster:dai-thang:2099-12",
            "report:cluster:dai-thang:2021-07",  # not open yet on 10 June 2021
            "report:cluster:dai-thang:2020-12",  # before the plan
            "report:cluster:dai-thang:1999-01",
            "report:cluster:dai-thang:2021-13",
            "report:cluster:dai-thang:2021-6",
            "report:cluster:dai-thang:2021-06\n",
            "report:cluster:dai-thang:２０２１-０６",
            "report:cluster:dai-thang:",
            "report:cluster:phu-tuc:2021-06",  # someone else's cluster
            "report:org:1:2021-06",
            "report:",
        ],
        "/trogiup",
    )
    assert not await drafts(app)
    await play(chat, [("/baocao", "Báo cáo tháng 06/2021"), ("[Có]", "Phương án bồi thường")])
    # mid-report, a forged reminder button changes nothing and the question is asked again
    await refused(chat, ["report:cluster:dai-thang:2099-12"], "Phương án bồi thường")
    await play(chat, [("/huy", "Đã tạm dừng")])
    answer = await forge(chat, "report:cluster:dai-thang:2021-05")  # a real, late one
    assert "Báo cáo tháng 05/2021" in answer, chat.log()
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Nộp muộn")])
    assert {d.period for d in await drafts(app)} == {"2021-05", "2021-06"}
    assert [r.period for r in await reports(app)] == ["2021-05"]


async def test_subject_buttons_are_checked_and_keep_the_month(deps: Deps) -> None:
    chat = Chat(deps, chat_id="4004")
    token = await invite(deps, Role.INVESTOR, clusters=["dai-thang", "phu-tuc"])
    await chat.say(f"/start {token}")
    await play(chat, [("/baocao 5/2021", "Anh/chị báo cáo cho cụm nào?")])
    await refused(
        chat,
        ["subject:2", "subject:-1", "subject:٠", "subject:0:x", "subject:", "a:qhct:yes"],
        "Anh/chị báo cáo cho cụm nào?",
    )
    await play(chat, [("[Phú Túc]", "Báo cáo tháng 05/2021 — Cụm công nghiệp làng nghề Phú Túc")])


async def test_paper_missing_cluster_and_language_payloads(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    await refused(
        chat, ["paper:2099-12", "paper:2020-12", "paper:garbage", "paper:2021-06 "], "/trogiup"
    )
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PaperReceipt)) == 0
    assert "Chỉ Sở Công Thương" in await forge(chat, "paperok:1")
    long_code = "x" * 5000
    answer = await forge(chat, f"cluster:{long_code}")
    assert "Không tìm thấy" in answer and len(answer) < 400, answer[:500]
    assert "Không tìm thấy" in await forge(chat, "cluster:phu-tuc")  # not theirs
    await refused(chat, ["lang:xx", "lang:", "lang:en:x"], "Chọn ngôn ngữ")
    await refused(chat, ["a:qhct:yes", "edit:1", "submit"], "/trogiup")  # nothing open
    async with app.sessions() as session:
        person = await session.scalar(select(Person).where(Person.role == Role.INVESTOR))
        assert person is not None and person.locale == "vi"

    admin = Chat(deps, chat_id="7007")
    await admin.say(f"/start {await invite(deps, Role.ADMIN)}")
    for payload in ["paperok:999999", "paperno:99999999999999999999999", "paperok:²"]:
        answer = await forge(admin, payload)
        assert "Yêu cầu này không còn" in answer and "Xin lỗi, có lỗi" not in answer, payload
    await refused(
        admin,
        ["missing:2099-12", "missing:2020-12", "missing:junk", "missing:2021-06 Huyện X"],
        "/trogiup",
    )
    assert "Chưa báo cáo tháng 06/2021" in await forge(admin, "missing:2021-06")
    answer = await forge(chat, "paper:2021-06")
    assert "Sở Công Thương sẽ xác nhận" in answer, answer
    async with app.sessions() as session:
        claim = await session.scalar(select(PaperReceipt))
    assert claim is not None and claim.period == "2021-06"
    assert "Đã xác nhận" in await forge(admin, f"paperok:{claim.id}")


async def test_a_figure_going_down_needs_the_real_confirmation(
    deps: Deps, clock: Clock, app: App
) -> None:
    chat = await investor(deps)
    await play(chat, [("/baocao", "QHCT"), ("[Có]", ""), ("[Có]", "Đã GPMB"), ("60", "")])
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    clock.now = datetime(2021, 7, 2, 8, 0, tzinfo=HANOI)
    await play(
        chat,
        [("/baocao", "QHCT"), ("[Không thay đổi]", ""), ("[Không thay đổi]", "Đã GPMB")],
    )
    await play(chat, [("40", "giảm từ 60 % xuống 40 %")])
    await refused(
        chat, ["back:gpmb:maybe", "back:qhct:yes", "back:gpmb:yes:x"], "giảm từ 60 % xuống 40 %"
    )
    await play(
        chat,
        [
            ("[Đúng, số liệu giảm]", "ghi ngắn gọn lý do"),
            ("Đo lại", "Đã chuyển kinh phí GPMB"),
        ],
    )
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    july = [r for r in await reports(app) if r.period == "2021-07"]
    assert july[0].answers["gpmb"] == {"v": "40", "reason": "Đo lại"}


async def test_typed_months_and_places_are_read_like_buttons(deps: Deps) -> None:
    """`/baocao 5/2005` opened a report for 2005; a location that is no place on Earth was
    stored as sent."""
    chat = await investor(deps, chat_id="9191")
    assert "từ tháng 01/2021" in await chat.say("/baocao 5/2005")
    await chat.say("/baocao")
    await chat.send(chat.incoming(location=(float("nan"), 105.9)))
    await chat.send(chat.incoming(location=(95.0, 105.9)))
    await chat.say("/huy")
    async with deps.sessions() as session:
        drafts = (await session.scalars(select(ReportDraft))).all()
    assert [d.period for d in drafts] == ["2021-06"]
    assert all("_location" not in d.answers for d in drafts)
