"""The report conversation, played as tables of what the person sends and what the bot says.
Real store (SQLite and PostgreSQL), real photo files; only the messenger is left out."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.app import App, open_app
from domain.roles import Role
from handlers import conversation
from handlers.context import Deps
from handlers.port import Attachment, Reply
from store.access import create_invitation, person_for, revoke_person
from store.db import unit_of_work
from store.models import AuditLog, Photo, Report, ReportPhoto
from tests.dialog import IMAGES, Chat, Clock, finish, play
from tests.test_summary_reading import statements

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
JUNE_10 = datetime(2021, 6, 10, 9, 0, tzinfo=HANOI)


async def invite(deps: Deps, role: Role, **scope: object) -> str:
    async with unit_of_work(deps.sessions) as session:
        invitation = await create_invitation(
            session,
            role=role,
            now=deps.clock(),
            created_by="test",
            **scope,  # type: ignore[arg-type]
        )
        return invitation.token


async def investor(deps: Deps, code: str = "dai-thang", chat_id: str = "1001") -> Chat:
    chat = Chat(deps, chat_id=chat_id)
    await chat.say(f"/start {await invite(deps, Role.INVESTOR, clusters=[code])}")
    return chat


async def invited_admin(deps: Deps, chat_id: str = "7007") -> Chat:
    """An admin of Sở Công Thương, joined by an invitation."""
    chat = Chat(deps, chat_id=chat_id)
    await chat.say(f"/start {await invite(deps, Role.ADMIN)}")
    return chat


# The whole report of a cluster founded 2018–2020, with every kind of wrong answer on the way.
FOUNDED_JUNE = [
    (
        "/baocao",
        "Báo cáo tháng 06/2021 — Cụm công nghiệp làng nghề Đại Thắng "
        "| Hạn nộp: trước ngày 25/06/2021 | QHCT 1/500 đã được phê duyệt chưa?",
    ),
    ("chắc vậy", "Trả lời Có hoặc Không | QHCT 1/500"),  # the form's own hint, same question
    ("có", "Phương án bồi thường"),
    ("[Không]", "Đã GPMB được bao nhiêu %"),
    ("nhiều lắm", "từ 0 đến 100 | Đã GPMB được bao nhiêu %"),
    ("150", "từ 0 đến 100"),
    ("60,5%", "Đã chuyển kinh phí GPMB"),
    ("📍 20.5834 105.9121", "Đã lưu vị trí công trường | Đã chuyển kinh phí GPMB"),
    ("đủ rồi", "Chọn một mục | Đã chuyển kinh phí GPMB"),
    ("[một phần]", "Đất lúa trên 10ha"),
    ("[Không cần]", "Đã khởi công xây dựng HTKT chưa? | !cho thuê đất"),  # GPMB < 100 %
    ("[Có]", "Khởi công ngày nào?"),
    ("32/13", "ngày/tháng/năm"),
    ("15/6", "HTKT"),
    ("12", "Đã tiếp nhận bao nhiêu dự án đầu tư vào cụm?"),
    ("3", "Quy chế quản lý dịch vụ công cộng"),  # asked once a project is in
    ("[Đang xây dựng]", "giá XLNT đến bước nào? | Sở Công Thương đã thẩm định"),
    ("[Chủ đầu tư đã xây dựng giá]", "Trạm XLNT"),
    ("[Đang xây dựng]", "Khó khăn, vướng mắc"),
    ("Chậm giải ngân kinh phí GPMB", "Kiến nghị, đề xuất"),
    ("[Bỏ qua]", "Xin gửi ảnh hiện trường | tối đa 10 ảnh"),
    ("📷 red.jpg", "Đã nhận 1 ảnh | Gửi thêm hoặc bấm Xong"),
    ("📷 red.jpg", "Đã nhận 1 ảnh"),  # the same photo twice is one photo
    ("📎 green.png", "Đã nhận 2 ảnh"),  # an image sent as a file
    ("📎 fake.jpg", "không phải ảnh"),  # named .jpg, but the bytes are not an image
    (
        "[Xong]",
        "kiểm tra lại báo cáo tháng 06/2021 | 60,5 % | Đã chuyển một phần | 15/06/2021 "
        "| Chậm giải ngân | (bỏ qua) | 2 ảnh",
    ),
    (
        "[Gửi báo cáo]",
        "Đã nhận báo cáo. Số tham chiếu: BC-202106- | Kỳ báo cáo: tháng 06/2021 "
        "| Nộp đúng hạn (trước ngày 25/06/2021) | Số ảnh: 2 | !điều chỉnh",
    ),
]


# An operating cluster's report, changing an answer from the summary.
OPERATING_JUNE = [
    ("/baocao", "Tỷ lệ lấp đầy hiện nay"),
    ("68.45", "HTKT của cụm đã được đầu tư xây dựng đồng bộ, hoàn thiện chưa?"),
    ("[Không]", "Hạng mục HTKT nào"),  # asked only when not complete
    ("Đường nội bộ, thoát nước", "Trạm XLNT"),
    ("[Có trạm, chưa đạt chuẩn]", "xây dựng trái phép"),
    ("[Có]", "Vi phạm ở đâu"),
    ("Lô B3, 200 m2, đã lập biên bản", "Trong tháng có sử dụng đất trái phép không?"),
    ("[Không]", "phải di dời | !Sử dụng đất trái phép ở đâu"),
    ("-3", "Không có thì nhập 0"),
    ("12", "Chuyển đổi quản lý"),
    ("[Đang rà soát]", "giá XLNT đến bước nào? | UBND Thành phố đã phê duyệt"),
    ("[Sở Công Thương đã thẩm định]", "Quy chế quản lý dịch vụ công cộng"),
    ("[Đã phê duyệt]", "cải tạo, nâng cấp, duy tu HTKT"),
    ("[Có]", "Cải tạo, duy tu hạng mục nào?"),
    ("Nạo vét cống thoát nước", "Khó khăn"),
    ("[Bỏ qua]", "Kiến nghị"),
    ("[Bỏ qua]", "ảnh"),
    ("[Xong]", "68,45 % | 12 hộ | Lô B3 | Sở Công Thương đã thẩm định | Nạo vét cống"),
    ("[✏️ 5]", "Trong tháng có xây dựng trái phép"),  # change an answer from the summary
    ("[Không]", "kiểm tra lại | !Lô B3"),  # the detail no longer applies
    ("[Gửi báo cáo]", "Đã nhận báo cáo"),
]


# A district's tasks of Phụ lục 1, until the remaining steps (answered by `finish`).
DISTRICT_START = [
    ("/baocao", "NV 14 | tiến độ thế nào?"),
    ("[Đang triển khai]", "đã thực hiện khoảng bao nhiêu %"),
    ("70", "ghi chú"),
    ("[Bỏ qua]", "tiến độ thế nào?"),
]


async def test_founded_cluster_report_end_to_end(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    assert "Chào mừng" in chat.text and "Đại Thắng" in chat.text
    await play(chat, FOUNDED_JUNE)
    async with app.sessions() as session:
        report = await session.scalar(select(Report))
        assert report is not None and report.on_time and report.version == 1
        assert report.period == "2021-06" and report.form == "founded"
        values = report.answers
        assert values["gpmb"] == {"v": "60.5"}
        assert values["projects"] == {"v": "3"} and values["service_prices"] == {"v": "drafted"}
        assert values["groundbreaking_date"] == {"v": "2021-06-15"}
        assert values["proposals"].get("v") is None
        assert "land_lease" not in values
        assert values["_location"] == {"v": "20.583400,105.912100"}
        photos = (
            await session.scalars(
                select(Photo).join(ReportPhoto).where(ReportPhoto.report_id == report.id)
            )
        ).all()
        audit = await session.scalar(select(AuditLog).where(AuditLog.action == "report.submit"))
    expected = {hashlib.sha256(IMAGES[n][0]).hexdigest() for n in ("red.jpg", "green.png")}
    assert {p.sha256 for p in photos} == expected
    for photo in photos:  # on disk under its hash, with a thumbnail
        assert (
            hashlib.sha256((deps.config.data_dir / photo.path).read_bytes()).hexdigest()
            == photo.sha256
        )
        assert (deps.config.data_dir / photo.thumb_path).exists()
    assert audit is not None and audit.entity_id == report.reference


async def test_next_month_unchanged_backwards_figure_and_correction(
    deps: Deps, clock: Clock, app: App
) -> None:
    chat = await investor(deps)
    await play(chat, FOUNDED_JUNE)
    clock.now = datetime(2021, 7, 2, 8, 0, tzinfo=HANOI)
    await play(
        chat,
        [
            ("/baocao", "Báo cáo tháng 07/2021 | Báo cáo lần trước: Có | Không thay đổi"),
            ("[Không thay đổi]", "Phương án bồi thường | Báo cáo lần trước: Không"),
            ("[Có]", "Đã GPMB | Báo cáo lần trước: 60,5 %"),
            ("40", "giảm từ 60,5 % xuống 40 % | Số liệu này đúng không?"),
            ("[Nhập lại]", "Đã GPMB"),
            ("40", "giảm từ 60,5 % xuống 40 %"),
            ("[Đúng, số liệu giảm]", "ghi ngắn gọn lý do"),
            ("Đo đạc lại diện tích", "Đã chuyển kinh phí GPMB"),
            ("[Không thay đổi]", "Đất lúa"),
            ("[Không thay đổi]", "Đã khởi công"),
            ("[Không thay đổi]", "Khởi công ngày nào? | 15/06/2021"),
            ("[Không thay đổi]", "HTKT"),
            ("30", "Đã tiếp nhận bao nhiêu dự án | Báo cáo lần trước: 3 dự án"),
            ("[Không thay đổi]", "Quy chế quản lý"),
            ("[Không thay đổi]", "Giá dịch vụ chung"),
            ("[Không thay đổi]", "Trạm XLNT"),
            ("[Không thay đổi]", "Khó khăn"),
            ("[Bỏ qua]", "Kiến nghị"),
            ("[Bỏ qua]", "ảnh hiện trường"),
            ("xong", "40 % (lý do: Đo đạc lại diện tích) | 0 ảnh"),
            ("[Gửi báo cáo]", "Kỳ báo cáo: tháng 07/2021 | !điều chỉnh"),
            # a correction of July: a new version, the first one stays
            ("/baocao", "Báo cáo tháng 07/2021"),
        ],
    )
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Đây là bản điều chỉnh lần 2 | bản trước vẫn được lưu")])
    async with app.sessions() as session:
        july = (
            await session.scalars(
                select(Report).where(Report.period == "2021-07").order_by(Report.version)
            )
        ).all()
    assert [r.version for r in july] == [1, 2]
    assert july[1].supersedes_id == july[0].id
    assert july[0].answers["gpmb"] == {"v": "40", "reason": "Đo đạc lại diện tích"}


async def test_draft_survives_cancel_restart_and_silence(
    deps: Deps, clock: Clock, app: App
) -> None:
    chat = await investor(deps)
    await play(
        chat,
        [
            ("/baocao", "QHCT"),
            ("[Có]", "Phương án bồi thường"),
            ("[Có]", "Đã GPMB"),
            ("/huy", "Đã tạm dừng | gõ /baocao để tiếp tục"),
            # paused: a number is not taken as an answer, and the draft is pointed out
            ("45", "báo cáo đang làm dở | gõ /baocao để tiếp tục | !Đã chuyển kinh phí"),
        ],
    )
    # a week of silence, and the bot process restarted on the same database
    clock.now += timedelta(days=7)
    async with open_app(app.settings) as restarted:
        chat.deps = Deps(restarted.sessions, deps.config, clock)
        await play(
            chat,
            [
                ("/baocao", "Tiếp tục bản nháp kỳ 06/2021 | Đã GPMB"),
                ("100", "Đã chuyển kinh phí GPMB"),
            ],
        )
    # and after a restart in the middle of a question, the answer is simply taken
    async with open_app(app.settings) as again:
        chat.deps = Deps(again.sessions, deps.config, clock)
        await play(
            chat,
            [
                ("[Đã chuyển đủ]", "Đất lúa"),
                ("[Đang chờ chấp thuận]", "cho thuê đất"),  # GPMB is 100 %: now it is asked
            ],
        )


async def test_land_lease_where_the_plan_hands_over_cleared_land_first(
    deps: Deps, app: App
) -> None:
    """Phụ lục 3 row 2 (Phú Túc): "Giao đất phần diện tích 97% đã GPMB" — the land lease is
    asked at 97 % clearance, where Đại Thắng's is asked only at 100 %."""
    chat = await investor(deps, code="phu-tuc", chat_id="2102")
    await play(
        chat,
        [
            ("/baocao", "QHCT 1/500"),
            ("[Có]", "Phương án bồi thường"),
            ("[Có]", "Đã GPMB"),
            ("97", "kinh phí GPMB"),
            ("[Đã chuyển đủ]", "Đất lúa"),
            ("[Không cần]", "Đã được cho thuê đất bao nhiêu %"),
            ("90", "khởi công"),
        ],
    )
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    async with app.sessions() as session:
        report = await session.scalar(select(Report).where(Report.subject == "cluster:phu-tuc"))
    assert report is not None and report.answers["land_lease"] == {"v": "90"}
    assert report.answers["gpmb"] == {"v": "97"}


async def test_operating_cluster_form(deps: Deps, app: App) -> None:
    chat = await investor(deps, code="binh-phu", chat_id="2002")
    await play(
        chat,
        OPERATING_JUNE,
    )
    async with app.sessions() as session:
        report = await session.scalar(select(Report).where(Report.subject == "cluster:binh-phu"))
    assert report is not None and report.form == "operating"
    assert report.answers["occupancy"] == {"v": "68.45"}
    assert report.answers["illegal_build"] == {"v": "no"}
    assert "illegal_detail" not in report.answers
    assert report.answers["illegal_land"] == {"v": "no"} and "land_detail" not in report.answers
    assert report.answers["service_prices"] == {"v": "appraised"}
    assert report.answers["utility_rules"] == {"v": "approved"}
    assert report.answers["maintenance_detail"] == {"v": "Nạo vét cống thoát nước"}


async def test_district_task_report(deps: Deps, app: App) -> None:
    chat = Chat(deps, chat_id="3003")
    token = await invite(deps, Role.DISTRICT, district="Huyện Phú Xuyên")
    await play(chat, [(f"/start {token}", "UBND quận/huyện | UBND Huyện Phú Xuyên")])
    await play(chat, DISTRICT_START)
    await finish(chat, prefer=("Đã hoàn thành", "Bỏ qua"))
    assert "CCN làng nghề Đại Thắng" in chat.text  # the district's own steps of its clusters
    await play(chat, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    async with app.sessions() as session:
        report = await session.scalar(select(Report).where(Report.form == "tasks"))
    assert report is not None
    assert report.answers["t14.status"] == {"v": "in_progress"}
    assert report.answers["t14.percent"] == {"v": "70"}
    assert any(k.startswith("s-dai-thang-") for k in report.answers)


async def test_an_invitation_gives_the_new_person_their_scope_without_reading_it_again(
    deps: Deps, app: App
) -> None:
    """The welcome names the invited scope (clusters, or the organisation), read with the
    invitation: the new person is not read back from the database (13 statements, now 11)."""
    investor_code = await invite(deps, Role.INVESTOR, clusters=["dai-thang", "phu-tuc"])
    department_code = await invite(deps, Role.DEPARTMENT, organisation="Sở Xây dựng")
    investor, department = Chat(deps, chat_id="1001"), Chat(deps, chat_id="1002")
    with statements(app) as seen:
        await investor.say(f"/start {investor_code}")
        await department.say(f"/start {department_code}")
    assert "Đại Thắng" in investor.text and "Phú Túc" in investor.text, investor.text
    assert "Đơn vị: Sở Xây dựng." in department.text, department.text
    assert not [s for s in seen if s.startswith("SELECT people.")], seen
    await investor.say("/baocao")  # the scope kept is the one the next update reads
    assert "báo cáo cho cụm nào" in investor.text
    assert sorted(b.label for b in investor.buttons) == [
        "Cụm công nghiệp làng nghề Phú Túc",
        "Cụm công nghiệp làng nghề Đại Thắng",
    ]


async def test_strangers_and_bad_invitations(deps: Deps, clock: Clock) -> None:
    stranger = Chat(deps, chat_id="9009")
    used = await invite(deps, Role.INVESTOR, clusters=["phu-tuc"])
    await Chat(deps, chat_id="9010").say(f"/start {used}")
    old = await invite(deps, Role.INVESTOR, clusters=["phu-tuc"])
    clock.now += timedelta(days=15)
    await play(
        stranger,
        [
            ("xin chào", "chưa được mời | 9009"),
            ("/baocao", "chưa được mời | 9009 | !Báo cáo tháng"),
            ("📷 red.jpg", "chưa được mời"),
            ("/start khongdung", "Mã mời không hợp lệ | 9009"),
            (f"/start {used}", "Lời mời này đã được sử dụng"),
            (f"/start {old}", "Lời mời này đã hết hạn"),
            ("/moi investor dai-thang", "chưa được mời"),
        ],
    )


async def test_update_delivered_twice_is_handled_once(deps: Deps) -> None:
    chat = await investor(deps)
    await chat.say("/baocao")
    incoming = chat.incoming(payload=chat.buttons[0].payload)  # [Có] for QHCT
    first = await chat.send(incoming)
    assert "Phương án bồi thường" in first
    shown = chat.replies
    assert await chat.send(incoming) == ""  # the same update id again: nothing happens
    chat.replies = shown
    await play(chat, [("[Có]", "Đã GPMB")])  # the bot is still at the second question


async def test_update_handled_before_a_crash_is_answered_again(deps: Deps) -> None:
    """The process died after the commit, before the answer went out: the channel delivers the
    update again to the restarted process, which answers what it answered the first time (the
    receipt of a report included) and changes nothing."""
    chat = await investor(deps)
    await chat.say("/baocao")
    await finish(chat)
    submit = chat.incoming(payload=next(b.payload for b in chat.buttons if "Gửi" in b.label))
    receipt = await chat.send(submit)
    assert "Đã nhận báo cáo" in receipt
    chat.deps = Deps(deps.sessions, deps.config, deps.clock)  # a new process, same database
    assert await chat.send(submit) == receipt
    assert await chat.send(submit) == ""  # this process has answered it now
    async with deps.sessions() as session:  # one report, nothing filed twice
        assert await session.scalar(select(func.count()).select_from(Report)) == 1


async def test_an_update_delivered_again_that_now_fails_gets_its_first_answer(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivered again after a crash, an update is handled again before its mark is found (the
    mark is the transaction's last write): if handling it again fails on what it already
    changed, the person still gets the first answer, not an apology; a new update that fails
    gets the apology."""
    chat = await investor(deps)
    await chat.say("/baocao")
    incoming = chat.incoming(payload=chat.buttons[0].payload)
    first = await chat.send(incoming)
    assert "Phương án bồi thường" in first

    async def broken(*_args: object) -> list[Reply]:
        raise RuntimeError("the state moved on")

    monkeypatch.setattr(conversation, "route", broken)
    chat.deps = Deps(deps.sessions, deps.config, deps.clock)  # a new process, same database
    assert await chat.send(incoming) == first
    assert "Xin lỗi" in await chat.say("10")


async def test_stale_button_asks_the_current_question_again(deps: Deps) -> None:
    chat = await investor(deps)
    await chat.say("/baocao")
    old_yes = chat.buttons[0].payload
    await play(chat, [("[Có]", "Phương án bồi thường"), ("[Có]", "Đã GPMB")])
    await chat.send(chat.incoming(payload=old_yes))
    assert "Đã GPMB" in chat.text


async def test_late_report_for_a_past_month(deps: Deps, clock: Clock) -> None:
    chat = await investor(deps)
    clock.now = datetime(2021, 8, 3, 10, 0, tzinfo=HANOI)
    await play(
        chat,
        [
            ("/baocao 13/2021", "tháng/năm"),
            ("/baocao 9/2021", "Chưa đến kỳ báo cáo tháng 09/2021"),
            ("/baocao 5/2021", "Báo cáo tháng 05/2021"),
        ],
    )
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Nộp muộn (hạn trước ngày 25/05/2021)")])


MISSED_JUNE = (
    "Lưu ý: báo cáo tháng 06/2021 chưa được gửi (hạn trước ngày 25/06/2021). "
    "Gõ /baocao 06/2021 để gửi muộn."
)


async def test_a_month_not_sent_is_pointed_out_when_the_next_one_opens(
    deps: Deps, clock: Clock
) -> None:
    """After the 25th /baocao opens the next month. Whoever was with the bot before the month
    before was due, and whose report for it was not sent, is told how to send it late; not
    someone whose report was sent (in the bot or on paper), nor someone who joined since."""
    late = await investor(deps)  # 10/06/2021, before June's deadline
    district = Chat(deps, chat_id="3003")  # reports for its committee, not a cluster
    await district.say(f"/start {await invite(deps, Role.DISTRICT, district='Huyện Phú Xuyên')}")
    sent = await investor(deps, "phu-tuc", chat_id="1002")
    await play(sent, [("/baocao", "Báo cáo tháng 06/2021 | !Lưu ý")])
    await finish(sent)
    await play(sent, [("[Gửi báo cáo]", "BC-202106-")])
    on_paper = await investor(deps, "binh-phu", chat_id="1003")
    await play(await invited_admin(deps), [("/vanban binh-phu 6/2021", "Đã ghi nhận")])
    clock.now = datetime(2021, 6, 26, 9, 0, tzinfo=HANOI)
    newcomer = await investor(deps, "phu-yen", chat_id="1004")

    await play(late, [("/baocao", f"Báo cáo tháng 07/2021 | {MISSED_JUNE}")])
    await play(district, [("/baocao", f"07/2021 — UBND Huyện Phú Xuyên | {MISSED_JUNE}")])
    for chat in (sent, on_paper, newcomer):
        await play(chat, [("/baocao", "Báo cáo tháng 07/2021 | !Lưu ý")])
    # the way it names is the way: June's report opens, and July's draft stays
    await play(late, [("/huy", "Đã tạm dừng"), ("/baocao 06/2021", "Báo cáo tháng 06/2021")])
    await finish(late)
    await play(late, [("[Gửi báo cáo]", "Nộp muộn"), ("/baocao", "Tiếp tục | 07/2021")])


async def test_admin_invites_lists_and_revokes_by_chat(deps: Deps) -> None:
    admin = await invited_admin(deps)
    await play(
        admin,
        [
            ("/trogiup", "/moi | /nguoidung"),
            ("/moi investor khong-co", "không có mã cụm này"),
            ("/moi investor phu-tuc", "Lời mời cho chủ đầu tư cụm công nghiệp | ?start="),
        ],
    )
    token = admin.text.rsplit("mã: ", 1)[1].strip()
    newcomer = Chat(deps, chat_id="7008", name="Trần Thị B")
    await play(newcomer, [(f"/start {token}", "Phú Túc"), ("/moi admin", "Chỉ Sở Công Thương")])
    await play(admin, [("/nguoidung", "Trần Thị B | phu-tuc | terminal:7008")])
    number = admin.text.split("Trần Thị B")[0].rsplit("#", 1)[1].strip()
    await play(admin, [(f"/thuhoi {number}", f"Đã thu hồi quyền của #{number}")])
    await play(newcomer, [("/baocao", "chưa được mời")])


async def test_language_switch_and_help(deps: Deps) -> None:
    chat = await investor(deps)
    await play(
        chat,
        [
            ("/trogiup", "/baocao — gửi báo cáo tháng | !/moi"),
            ("/ngonngu", "Chọn ngôn ngữ"),
            ("[English]", "Language: English."),
            ("/help", "/baocao — send this month's report"),
            ("/report", "Is the 1/500 detailed plan (QHCT) approved?"),
            ("/khongco", "I do not know that command"),
        ],
    )


async def test_photos_before_the_report_are_kept_and_capped(deps: Deps, app: App) -> None:
    deps.config = type(deps.config)(**{**deps.config.__dict__, "max_photos": 2})
    chat = await investor(deps)
    await play(
        chat,
        [
            ("📷 red.jpg", "Đã lưu 1 ảnh | /baocao"),
            ("📍 21.0 105.8", "Đã lưu vị trí"),
            ("📷 blue.jpg", "Đã lưu 2 ảnh"),
            ("/baocao", "Đã thêm 2 ảnh | QHCT"),
            ("/huy", "tạm dừng"),
            ("/baocao", "QHCT"),
            ("📎 green.png", "đã có đủ 2 ảnh"),
        ],
    )
    async with app.sessions() as session:
        linked = await session.scalar(select(func.count()).select_from(ReportPhoto))
    assert linked == 2


async def test_photos_are_downloaded_only_from_a_person(deps: Deps, clock: Clock) -> None:
    """A stranger's photo is never downloaded; a person's is, without asking the store when
    their last update was just handled; once their access is withdrawn (by another worker,
    this one not told) and an update of theirs has found nobody, theirs are not either."""
    downloads: list[str] = []

    async def photo(chat: Chat) -> str:
        async def fetch() -> bytes:
            downloads.append(chat.chat_id)
            return IMAGES["red.jpg"][0]

        return await chat.send(chat.incoming(attachments=(Attachment("photo", fetch),)))

    stranger, person = Chat(deps, chat_id="9009"), await investor(deps)
    assert "chưa được mời" in await photo(stranger)
    assert "Đã lưu 1 ảnh" in await photo(person)
    assert downloads == ["1001"]
    async with unit_of_work(deps.sessions) as session:
        found = await person_for(session, "terminal", "1001")
        assert found is not None
        await revoke_person(session, found.id, actor="another worker", now=clock.now)
    assert "chưa được mời" in await person.say("xin chào")
    assert "chưa được mời" in await photo(person)
    assert downloads == ["1001"]
