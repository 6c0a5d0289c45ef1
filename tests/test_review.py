"""The review of a report, as the people see it (handlers/review.py): an admin sends a report
back for changes, the investor gets one message with the comment and the answers concerned,
opens the report at those answers, corrects two, and the admin sees what changed and accepts.
A report waiting for changes is not received (README, "Review of reports"); forged review
buttons and people who may not review are refused. Real store, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import select

from bot.app import App
from domain.calendar import Period
from domain.roles import Role
from domain.slots import Review, counted, rate
from handlers.context import Deps
from handlers.port import Reply
from reminders.policy import Policy
from reminders.sender import tick
from reports import workbook
from reports.summary import summarise
from store.db import unit_of_work
from store.models import AuditLog, Report, ReportPhoto, ReportReview
from store.slots import slots_for
from tests import inprocess
from tests.dialog import Chat, Clock, play
from tests.test_commune_scope import MERGE, NEW, at_clock
from tests.test_dialogs import FOUNDED_JUNE, HANOI, investor, invite
from tests.test_orgs import import_orgs, join, write_csv
from tests.test_reminders import Outbox
from tests.test_status import report

JUNE = Period(2021, 6)
REFUSED = "Xin lỗi, lựa chọn này không dùng được ở đây"
COMMENT = "Số liệu GPMB chưa khớp biên bản; HTKT ghi theo quý"


async def admin_chat(deps: Deps, chat_id: str = "7007") -> Chat:
    chat = Chat(deps, chat_id=chat_id, name="Chị Hà (Sở Công Thương)")
    await chat.say(f"/start {await invite(deps, Role.ADMIN)}")
    return chat


async def notices(deps: Deps, when: datetime | None = None) -> Outbox:
    """One run of the reminders (which send the review's notices) at the test's clock."""
    box = Outbox(channels=frozenset({"terminal"}))
    await tick(deps.sessions, deps.calendar, Policy(), box, when or deps.clock())
    return box


def received(chat: Chat, box: Outbox) -> str:
    """The notices `box` sent to this chat become what the chat shows (to tap their buttons)."""
    chat.replies = [reply for chat_id, reply in box.sent if chat_id == chat.chat_id]
    assert chat.replies, f"nothing sent to {chat.chat_id}: {box.sent}"
    return chat.text


async def reports(app: App) -> list[Report]:
    async with app.sessions() as session:
        return list((await session.scalars(select(Report).order_by(Report.id))).all())


async def june_rate(app: App, deps: Deps) -> tuple[int, int]:
    async with app.sessions() as session:
        slots = await slots_for(session, JUNE, deps.calendar)
    r = rate(slots)
    return r.received, r.expected


# The admin's side of sending back Đại Thắng's June report (FOUNDED_JUNE): answers 3 (GPMB)
# and 8 (HTKT) are to check.
SEND_BACK = [
    ("/duyet", "Báo cáo chờ duyệt: 1. | BC-202106- | Đại Thắng | Chọn một báo cáo để duyệt"),
    (
        "[BC-202106]",
        "Báo cáo BC-202106- | (lần 1) | Nguyễn Văn A gửi ngày 10/06/2021 "
        "| Tình trạng duyệt: mới, chưa duyệt | 3. Đã GPMB được bao nhiêu % | 60,5 % "
        "| 8. HTKT đã hoàn thành bao nhiêu % | [Chấp nhận] | [Cần sửa]",
    ),
    ("[Cần sửa]", "Câu trả lời nào cần sửa? | 15. Xin gửi ảnh hiện trường"),
    ("16", "Xin gõ số thứ tự từ 1 đến 15"),
    ("3 và 8", "Các câu trả lời cần xem lại: | • Đã GPMB | 60,5 % | Xin ghi góp ý"),
    ("📷 red.jpg", f"{REFUSED} | Xin ghi góp ý"),  # the comment is awaited
    (COMMENT, "Đã trả lại báo cáo BC-202106- | để sửa. Nguyễn Văn A sẽ nhận được góp ý"),
]


async def test_needs_changes_correction_and_accept(deps: Deps, clock: Clock, app: App) -> None:
    owner = await investor(deps)
    await play(owner, FOUNDED_JUNE)
    admin = await admin_chat(deps)
    received_before, expected = await june_rate(app, deps)
    await play(admin, SEND_BACK)
    # waiting for changes: not received, and /chuabaocao says why
    assert await june_rate(app, deps) == (received_before - 1, expected)
    await play(
        admin,
        [
            ("/chuabaocao", "làng nghề Đại Thắng | đã trả lại để sửa (BC-202106-"),
            (
                "/tinhhinh Đại Thắng",
                "Báo cáo tháng 06/2021: đã trả lại để sửa | Tình trạng duyệt: cần sửa",
            ),
        ],
    )
    # the investor gets one message: the comment, the answers concerned, the way to correct
    clock.now = clock.now.replace(minute=5)
    box = await notices(deps)
    text = received(owner, box)
    for piece in (
        "Sở Công Thương đề nghị anh/chị sửa báo cáo BC-202106-",
        f"“{COMMENT}”",
        "Các câu trả lời cần xem lại:",
        "• Đã GPMB được bao nhiêu % diện tích: 60,5 %",
        "Khi chưa sửa, báo cáo chưa được tính là đã nhận.",
        "[Sửa báo cáo]",
    ):
        assert piece in text, text
    assert "Khởi công" not in text  # only the answers concerned
    assert admin.chat_id not in box.chats()
    assert not (await notices(deps)).sent  # once
    await play(
        owner,
        [
            (
                "[Sửa báo cáo]",
                "Đang sửa báo cáo BC-202106- | Xin trả lời lại các câu sau "
                "| Đã GPMB được bao nhiêu % | Báo cáo lần trước: 60,5 %",
            ),
            ("80", "HTKT đã hoàn thành bao nhiêu %"),  # the next answer concerned, nothing between
            ("30", "kiểm tra lại báo cáo tháng 06/2021 | 80 % | 30 % | 15/06/2021 | 2 ảnh"),
            ("[Gửi báo cáo]", "Đây là bản điều chỉnh lần 2 | bản trước vẫn được lưu"),
        ],
    )
    first, second = await reports(app)
    assert (second.version, second.supersedes_id, second.review_state) == (2, first.id, "new")
    assert second.answers["gpmb"] == {"v": "80"} and second.answers["htkt"] == {"v": "30"}
    assert second.answers["groundbreaking_date"] == first.answers["groundbreaking_date"]
    assert first.answers["gpmb"] == {"v": "60.5"}  # the version sent back is kept as it was
    async with app.sessions() as session:  # its photos came along
        photos = await session.scalars(
            select(ReportPhoto.photo_id).where(ReportPhoto.report_id == second.id)
        )
        assert len(photos.all()) == 2
    # corrected: received again (late or on time by the correction's own date)
    assert await june_rate(app, deps) == (received_before, expected)
    # the admin is shown what changed, and accepts
    text = received(admin, await notices(deps))
    for piece in (
        "Nguyễn Văn A đã sửa báo cáo BC-202106-",
        "Các câu trả lời đã thay đổi:",
        "• Đã GPMB được bao nhiêu % diện tích: 60,5 % → 80 %",
        "HTKT",
        "12 % → 30 %",
        "[Chấp nhận]",
        "[Cần sửa]",
    ):
        assert piece in text, text
    assert "Khởi công ngày nào" not in text  # unchanged answers are not listed
    await play(
        admin,
        [
            ("[Chấp nhận]", f"Đã chấp nhận báo cáo {second.reference}. Xin cảm ơn."),
            ("/duyet", "Không có báo cáo nào chờ duyệt."),
            (
                "/tinhhinh Đại Thắng",
                f"đã nhận ({second.reference} | Tình trạng duyệt: đã chấp nhận",
            ),
        ],
    )
    async with app.sessions() as session:
        audit = (
            await session.scalars(
                select(AuditLog).where(AuditLog.action.like("review.%")).order_by(AuditLog.id)
            )
        ).all()
        decisions = (await session.scalars(select(ReportReview).order_by(ReportReview.id))).all()
    assert [(a.action, a.entity_id, a.actor) for a in audit] == [
        ("review.needs_changes", first.reference, "Chị Hà (Sở Công Thương)"),
        ("review.reopen", first.reference, "Nguyễn Văn A"),
        ("review.accepted", second.reference, "Chị Hà (Sở Công Thương)"),
    ]
    assert audit[0].detail["questions"] == ["gpmb", "htkt"]
    assert audit[0].detail["comment"] == COMMENT and audit[0].channel == "terminal"
    assert [(d.state, d.report_id) for d in decisions] == [
        ("needs_changes", first.id),
        ("accepted", second.id),
    ]
    assert not (await notices(deps)).sent  # nothing more to tell anyone


async def test_the_rate_counts_new_and_accepted_reports(deps: Deps, clock: Clock, app: App) -> None:
    """README's rule: new and accepted count as received; needs changes does not, until a new
    version comes, whose own date decides on time or late."""
    owner = await investor(deps)
    await play(owner, FOUNDED_JUNE)
    async with app.sessions() as session:
        summary = await summarise(session, JUNE, deps.calendar)
    before = summary.total
    [report] = await reports(app)
    for state, counts in ((Review.ACCEPTED, True), (Review.NEEDS_CHANGES, False)):
        async with unit_of_work(app.sessions) as session:
            found = await session.get(Report, report.id)
            assert found is not None
            found.review_state = state.value
        async with app.sessions() as session:
            total = (await summarise(session, JUNE, deps.calendar)).total
            slots = {str(s.subject): s for s in await slots_for(session, JUNE, deps.calendar)}
        assert total.received == before.received - (0 if counts else 1), state
        assert total.on_time == before.on_time - (0 if counts else 1), state
        slot = slots["cluster:dai-thang"]
        assert slot.review is state and slot.filled is counts
        assert slot.changes == (None if counts else report.reference)
    # the workbook's per-cluster sheet shows the state
    async with app.sessions() as session:
        summary = await summarise(session, JUNE, deps.calendar)
        path = await workbook.build(
            session, summary, deps.calendar, deps.config.data_dir / "june.xlsx", clock.now
        )
    sheet = next(ws for ws in load_workbook(path).worksheets if ws.title.startswith("PL3"))
    header = [c.value for c in sheet[workbook.HEADER_ROW]]
    assert header[-1] == "Tình trạng duyệt"
    row = next(
        r
        for r in sheet.iter_rows(min_row=workbook.FIRST_ROW, values_only=True)
        if r[1] == "Cụm công nghiệp làng nghề Đại Thắng"
    )
    assert row[-1] == "cần sửa" and row[header.index("Báo cáo kỳ này")] == "chưa nộp"


def test_the_version_that_counts() -> None:
    class V:
        def __init__(self, state: str) -> None:
            self.review_state = state

    new, ok, back = "new", "accepted", "needs_changes"
    v = [V(s) for s in (new,)]
    assert counted(v) is v[0]
    v = [V(s) for s in (new, new)]
    assert counted(v) is v[0]  # a correction: the first version still decides timeliness
    v = [V(s) for s in (back, new)]
    assert counted(v) is v[1]  # sent back: the correction decides
    v = [V(s) for s in (new, back)]
    assert counted(v) is None  # the latest waits for changes
    v = [V(s) for s in (ok, back, new, ok)]
    assert counted(v) is v[2]
    assert counted([]) is None


async def test_forged_review_buttons_are_refused(deps: Deps, app: App) -> None:
    owner = await investor(deps)
    await play(owner, FOUNDED_JUNE)
    [report] = await reports(app)
    rid = report.id
    other = await investor(deps, code="binh-phu", chat_id="2002")
    department = Chat(deps, chat_id="4004")  # a department the plan gives no cluster step
    await department.say(
        f"/start {await invite(deps, Role.DEPARTMENT, organisation='Sở Kế hoạch và Đầu tư')}"
    )
    admin = await admin_chat(deps)
    for chat, payloads in (
        # an investor may not review, even their own report
        (owner, [f"review:{rid}", f"accept:{rid}", f"changes:{rid}"]),
        # another investor may not review nor correct someone else's report
        (other, [f"accept:{rid}", f"fix:{rid}", f"changes:{rid}"]),
        # a department without a step in this cluster
        (department, [f"accept:{rid}", f"review:{rid}"]),
        # unknown ids and malformed payloads, even for an admin
        (
            admin,
            [
                "accept:999999",
                "changes:0",
                "review:-1",
                "accept:1x",
                "accept:",
                "review:99999999999",
                f"fix:{rid}",  # an admin reports on no cluster
                "fix:abc",
            ],
        ),
    ):
        for payload in payloads:
            answer = await chat.send(chat.incoming(payload=payload))
            assert REFUSED in answer, f"{payload!r} → {answer}"
            assert "Xin lỗi, có lỗi" not in answer
    # nothing changed; the sender's fix of a report not sent back is answered kindly
    [report] = await reports(app)
    assert report.review_state == "new"
    await play(owner, [("/baocao", "Báo cáo tháng 06/2021")])
    answer = await owner.send(owner.incoming(payload=f"fix:{rid}"))
    assert "Báo cáo này hiện không cần sửa" in answer
    async with app.sessions() as session:
        assert await session.scalar(select(ReportReview)) is None


async def test_who_may_use_duyet(deps: Deps, app: App) -> None:
    owner = await investor(deps)
    await play(owner, FOUNDED_JUNE)
    district = Chat(deps, chat_id="3003")
    await district.say(f"/start {await invite(deps, Role.DISTRICT, district='Huyện Phú Xuyên')}")
    refused = "Chỉ Sở Công Thương và các sở được duyệt báo cáo."
    await play(owner, [("/duyet", refused), ("/review", refused)])
    await play(district, [("/duyet", refused)])
    # the department that owns a step of Đại Thắng (the land lease) reviews its reports;
    # a department with no step in any cluster's plan reviews none
    tnmt = Chat(deps, chat_id="4005")
    await tnmt.say(
        f"/start {await invite(deps, Role.DEPARTMENT, organisation='Sở Tài nguyên và Môi trường')}"
    )
    await play(
        tnmt,
        [
            ("/duyet", "Báo cáo chờ duyệt: 1. | Đại Thắng"),
            ("[BC-202106]", "[Chấp nhận]"),
            ("[Cần sửa]", "Câu trả lời nào cần sửa?"),
            ("/huy", "Đã hủy duyệt; không có gì thay đổi."),
            ("/duyet", "Báo cáo chờ duyệt: 1."),
            ("[BC-202106]", "Tình trạng duyệt: mới, chưa duyệt"),
            ("[Chấp nhận]", "Đã chấp nhận báo cáo"),
            ("/duyet", "Không có báo cáo nào chờ duyệt."),
        ],
    )


async def test_the_reminder_says_the_report_needs_changes(
    deps: Deps, clock: Clock, app: App
) -> None:
    owner = await investor(deps)
    await play(owner, FOUNDED_JUNE)
    admin = await admin_chat(deps)
    await play(admin, SEND_BACK)
    # 20 June, 08:00: the reminder five days before lists it with the comment, not as missing
    box = await notices(deps, datetime(2021, 6, 20, 8, 0, tzinfo=HANOI))
    texts = box.to(owner.chat_id)
    reminder = next(t for t in texts if "cần sửa trước khi được tính là đã nhận" in t)
    assert "Cụm công nghiệp làng nghề Đại Thắng, 06/2021 (BC-202106-" in reminder
    assert COMMENT in reminder and "Chưa nhận được báo cáo" not in reminder
    buttons = [b for c, r in box.sent if c == owner.chat_id for row in r.buttons for b in row]
    assert any(b.payload.startswith("fix:") for b in buttons)
    assert not any(b.payload.startswith("report:") for b in buttons)
    # corrected: no more
    received(owner, box)
    owner.replies = [Reply(reminder, [[b] for b in buttons if b.payload.startswith("fix:")])]
    await play(owner, [("[Sửa: ]", "Đã GPMB"), ("80", "HTKT"), ("30", "kiểm tra lại")])
    await play(owner, [("[Gửi báo cáo]", "bản điều chỉnh lần 2")])
    box = await notices(deps, datetime(2021, 6, 23, 8, 0, tzinfo=HANOI))
    assert not any("cần sửa" in t for t in box.to(owner.chat_id))


async def test_review_from_the_command_line(deps: Deps, app: App, tmp_path: Path) -> None:
    owner = await investor(deps)
    await play(owner, FOUNDED_JUNE)
    [report] = await reports(app)
    url, data_dir = app.settings.database_url, tmp_path / "cli"

    async def ccn(*args: str) -> inprocess.Done:
        return await asyncio.to_thread(
            inprocess.ccn_at, tmp_path, url, "review", *args, data_dir=data_dir
        )

    done = await ccn("list", "--period", "6/2021")
    assert report.reference in done.stdout and "Báo cáo chờ duyệt: 1." in done.stdout
    done = await ccn("show", report.reference)
    assert "3. Đã GPMB được bao nhiêu % diện tích? — 60,5 %" in done.stdout
    done = await ccn("changes", report.reference, "--answers", "3 99", "--comment", "x")
    assert done.returncode == 1 and "Không phải câu trả lời của báo cáo này: 99" in done.stderr
    done = await ccn("changes", report.reference, "--answers", "3", "--comment", "Xin xem lại")
    assert done.returncode == 0, done.stderr
    assert "Đã trả lại báo cáo" in done.stdout
    assert await june_rate(app, deps) == (0, (await june_rate(app, deps))[1])
    text = received(owner, await notices(deps))  # from the CLI: "Sở Công Thương" asks
    assert "Sở Công Thương đề nghị anh/chị sửa báo cáo" in text and "“Xin xem lại”" in text
    done = await ccn("accept", report.reference)
    assert done.returncode == 0 and "Đã chấp nhận báo cáo" in done.stdout
    assert (await ccn("accept", "BC-000000-00000")).returncode == 1
    async with app.sessions() as session:
        audit = (
            await session.scalars(select(AuditLog).where(AuditLog.action.like("review.%")))
        ).all()
    assert {(a.action, a.actor, a.channel) for a in audit} == {
        ("review.needs_changes", "cli", "cli"),
        ("review.accepted", "cli", "cli"),
    }


async def test_a_department_reviews_what_the_one_merged_into_it_reviewed(
    app: App, tmp_path: Path
) -> None:
    """Sở Tài nguyên và Môi trường (a land-lease step in Đại Thắng's plan) merged into Sở Nông
    nghiệp và Môi trường on 1 March 2025: from March the successor reviews its reports."""
    await join(app, "2025-01-05T09:00", "6001", Role.INVESTOR, clusters=["dai-thang"])
    await import_orgs(app, write_csv(tmp_path / "merge.csv", MERGE))
    new = await join(app, "2025-03-02T09:00", "7002", Role.DEPARTMENT, organisation=NEW)
    refused = "Chỉ Sở Công Thương và các sở được duyệt báo cáo."
    # February: not merged yet, the new department has no step of its own to review
    await report(app, "6001", "dai-thang", "2025-02", {"qhct": "yes"}, "2025-02-10T09:00")
    await play(at_clock(new, "2025-02-20T09:00"), [("/duyet", refused)])
    # March: the predecessor's clusters are its own
    await play(
        at_clock(new, "2025-03-20T09:00"),
        [
            ("/duyet", "Báo cáo chờ duyệt: 1. | Đại Thắng"),
            ("[BC-2025-02-dai-thang]", "Tình trạng duyệt: mới, chưa duyệt | [Chấp nhận]"),
            ("[Chấp nhận]", "Đã chấp nhận báo cáo"),
        ],
    )
    [accepted] = await reports(app)
    assert accepted.review_state == Review.ACCEPTED.value
