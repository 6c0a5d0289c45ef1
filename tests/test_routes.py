"""The routing table (handlers.routes): the commands and their aliases, who may use each, the
reminders' buttons, and the order of precedence the if-chain had."""

from __future__ import annotations

import re

from domain.roles import Role
from handlers import routes
from handlers.context import Config, Deps
from handlers.payloads import Kind
from tests.dialog import Chat, play
from tests.test_dialogs import investor, invite

ONLY_ADMIN = "Chỉ Sở Công Thương được dùng"
ONLY_OFFICE = "Chỉ Sở Công Thương và UBND quận, huyện"


def test_each_command_has_its_vietnamese_word_and_english_alias() -> None:
    words = [w for c in routes.COMMANDS for w in c.words]
    assert len(words) == len(set(words)), "a word routes to two commands"
    for command in routes.COMMANDS:
        assert all(w.startswith("/") and w == w.lower() for w in command.words)
        if command.name != "start":
            assert len(command.words) == 2, command.name
            assert command.words[1] == f"/{command.name}", command.name  # the English alias
    assert routes.BY_WORD["/baocao"] is routes.BY_WORD["/report"]
    assert set(routes.BY_NAME) == {c.name for c in routes.COMMANDS}


def test_who_may_use_what() -> None:
    restricted = {c.name: c.roles for c in routes.COMMANDS if c.roles is not None}
    assert restricted == {
        "invite": {Role.ADMIN},
        "people": {Role.ADMIN},
        "revoke": {Role.ADMIN},
        "paper": {Role.ADMIN},
        "missing": {Role.ADMIN, Role.DISTRICT},
        "summary": {Role.ADMIN, Role.DISTRICT},
        "review": {Role.ADMIN, Role.DEPARTMENT},
    }
    report = routes.BY_NAME["report"]
    assert all(report.allows(role) for role in [*Role, None])
    assert not routes.BY_NAME["invite"].allows(Role.DISTRICT.value)
    assert routes.BY_NAME["invite"].allows(Role.ADMIN.value)


def test_reading_a_command() -> None:
    assert routes.command_of("/baocao 5/2021") == ("report", "5/2021")
    assert routes.command_of("/BaoCao  5/2021 ") == ("report", "5/2021")
    # `/baocao@<bot>` is Telegram's: its adapter takes the bot's name off (test_telegram_adapter)
    assert routes.command_of("/baocao@ccn_bot") == (routes.UNKNOWN, "")
    assert routes.command_of("/report") == ("report", "")
    assert routes.command_of("/khongco x") == (routes.UNKNOWN, "x")
    assert routes.command_of("dai thang") == (None, "dai thang")


def test_the_reminders_buttons_work_at_any_step() -> None:
    assert set(routes.REMINDER_BUTTONS) == {
        Kind.REPORT,
        Kind.PAPER,
        Kind.PAPER_OK,
        Kind.PAPER_NO,
        Kind.MISSING,
    }


async def test_the_help_names_only_commands_of_the_table(deps: Deps) -> None:
    admin = Chat(deps, chat_id="7007")
    await admin.say(f"/start {await invite(deps, Role.ADMIN)}")
    shown = await admin.say("/trogiup")
    named = re.findall(r"(?<!\w)/[a-z]+", shown)
    assert len(named) >= 10
    for word in named:
        assert word in routes.BY_WORD, word


async def test_roles_are_refused_as_before(deps: Deps) -> None:
    chat = await investor(deps)
    await play(
        chat,
        [
            ("/chuabaocao", ONLY_OFFICE),
            ("/tonghop 5/2021", ONLY_OFFICE),
            ("/summary", ONLY_OFFICE),
            ("/vanban dai-thang 6/2021", ONLY_ADMIN),
            ("/thuhoi 1", ONLY_ADMIN),
            ("/invite admin", ONLY_ADMIN),
        ],
    )
    district = Chat(deps, chat_id="3003")
    await district.say(f"/start {await invite(deps, Role.DISTRICT, district='Huyện Phú Xuyên')}")
    await play(district, [("/chuabaocao", "tháng 06/2021"), ("/moi admin", ONLY_ADMIN)])


async def test_precedence_mid_report(deps: Deps) -> None:
    """Commands, the language and reminders' buttons come before the open question; the
    question is still open afterwards."""
    chat = await investor(deps)
    await play(
        chat,
        [
            ("/baocao", "QHCT"),
            ("[Có]", "Phương án bồi thường"),
            ("/trogiup", "/baocao"),
            ("/khongco", "Bot chưa hiểu lệnh này"),
            ("/tinhhinh", "Đại Thắng"),
            ("/ngonngu", "Chọn ngôn ngữ"),
            ("[Tiếng Việt]", "Tiếng Việt"),
        ],
    )
    # a reminder's button for another month opens that report, whatever the step
    answer = await chat.send(chat.incoming(payload="report:cluster:dai-thang:2021-05"))
    assert "Báo cáo tháng 05/2021" in answer, chat.log()
    await play(chat, [("/baocao", "Tiếp tục bản nháp kỳ 06/2021 | Phương án bồi thường")])


async def test_picking_the_cluster_takes_buttons_and_leaves_text_to_the_status(
    deps: Deps,
) -> None:
    chat = Chat(deps, chat_id="4004")
    await chat.say(f"/start {await invite(deps, Role.INVESTOR, clusters=['dai-thang', 'phu-tuc'])}")
    await play(
        chat,
        [
            ("/baocao", "Anh/chị báo cáo cho cụm nào?"),
            ("phu tuc", "Phú Túc | Bước tiếp theo | !Hạn nộp"),  # typed: the cluster's card
        ],
    )
    answer = await chat.send(chat.incoming(payload="cluster:phu-tuc"))  # a card's button
    assert "lựa chọn này không dùng được" in answer, chat.log()  # refused while picking
    answer = await chat.send(chat.incoming(payload="subject:0"))
    assert "Báo cáo tháng 06/2021" in answer, chat.log()


async def test_idle_chats(deps: Deps) -> None:
    chat = await investor(deps)
    await play(
        chat,
        [
            ("dai thang", "Đại Thắng"),  # typed text: the cluster's card
            ("📍 21.0 105.8", "Đã lưu vị trí"),
        ],
    )
    answer = await chat.send(chat.incoming(payload="cluster:dai-thang"))
    assert "Đại Thắng" in answer, chat.log()
    answer = await chat.send(chat.incoming(payload="edit:1"))  # a button of no open report
    assert "lựa chọn này không dùng được" in answer and "/trogiup" in answer, chat.log()
    answer = await chat.send(chat.incoming(payload=""))  # a callback with no data
    assert "/baocao" in answer, chat.log()


async def test_an_invitation_without_a_telegram_link_is_a_code_to_type(deps: Deps) -> None:
    """Zalo has no link that opens a chat with a token: with no Telegram bot configured, /moi
    gives only the code, which the invited person types in the chat."""
    zalo_only = Deps(deps.sessions, Config(calendar=deps.calendar), deps.clock)
    admin = Chat(zalo_only, chat_id="admin")
    await admin.say(f"/start {await invite(zalo_only, Role.ADMIN)}")
    reply = await admin.say("/moi investor phu-tuc")
    assert "gõ vào cuộc trò chuyện với bot" in reply and "t.me" not in reply
    token = reply.rsplit(": ", 1)[1]
    newcomer = Chat(zalo_only, chat_id="new")
    await play(newcomer, [(token, "Chào mừng | Phú Túc")])
