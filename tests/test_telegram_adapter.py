"""The Telegram adapter in this process (`bot.channels.telegram.running`, real PTB, long
polling) against the stand-in Bot API, on a SQLite store: file sizes and command menus."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import App, open_app, prepare
from bot.channels import telegram
from bot.settings import load_settings
from domain.roles import Role
from handlers.context import Deps
from store.access import accept_invitation, create_invitation, revoke_person
from store.db import unit_of_work
from store.models import Person as PersonRow
from testing.standin_telegram import StandinBotAPI
from tests.test_telegram_e2e import Person, menu_of

MB = 1024 * 1024
BASE_MENU = ["baocao", "huy", "tinhhinh", "lienket", "ngonngu", "trogiup"]
DISTRICT_MENU = [
    "baocao",
    "huy",
    "tinhhinh",
    "chuabaocao",
    "tonghop",
    "lienket",
    "ngonngu",
    "trogiup",
]
ADMIN_MENU = [
    "baocao",
    "huy",
    "moi",
    "nguoidung",
    "thuhoi",
    "vanban",
    "tinhhinh",
    "chuabaocao",
    "tonghop",
    "duyet",
    "lienket",
    "ngonngu",
    "trogiup",
]


@pytest.fixture
async def api() -> AsyncIterator[StandinBotAPI]:
    server = StandinBotAPI(token="616161:ADAPTER", bot_username="ccn_hanoi_bot")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    settings = load_settings(
        DATA_DIR=tmp_path / "data", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'ccn.db'}"
    )
    async with open_app(settings) as opened:
        await prepare(opened)
        yield opened


async def bind(
    app: App, chat_id: int, role: Role, clusters: Sequence[str] = (), district: str | None = None
) -> int:
    """Invite and accept in the store, as if the person had opened the link earlier."""
    now = datetime.now(UTC)
    async with unit_of_work(app.sessions) as session:
        invitation = await create_invitation(
            session, role=role, now=now, clusters=clusters, district=district
        )
        person = await accept_invitation(
            session,
            invitation.token,
            channel="telegram",
            chat_id=str(chat_id),
            display_name=f"Người {chat_id}",
            locale="vi",
            now=now,
        )
        assert isinstance(person, PersonRow)
        return person.id


def running(
    api: StandinBotAPI, deps: Deps
) -> contextlib.AbstractAsyncContextManager[telegram.TelegramNotifier]:
    return telegram.running(
        deps, token=api.token, base_url=f"{api.root}/bot", file_url=f"{api.root}/file/bot"
    )


async def test_a_photo_over_max_photo_mb_is_refused_without_download(
    api: StandinBotAPI, app: App
) -> None:
    await bind(app, 7101, Role.INVESTOR, clusters=["dai-thang"])
    api.meet(7101)
    async with running(api, app.deps()):
        person = Person(api, 7101)
        answer = await person.album([b"\xff\xd8" + b"\0" * (15 * MB)])  # declared 15 MB > 10 MB
        assert "lớn hơn 10 MB" in answer and "có lỗi" not in answer
    assert api.called("getFile") == [] and api.files_served == 0


async def test_the_limit_named_is_the_bot_apis_when_max_photo_mb_is_higher(
    api: StandinBotAPI, app: App
) -> None:
    await bind(app, 7102, Role.INVESTOR, clusters=["dai-thang"])
    api.meet(7102)
    deps = app.deps()
    deps.config = dataclasses.replace(deps.config, max_photo_bytes=30 * MB)  # MAX_PHOTO_MB=30
    async with running(api, deps):
        person = Person(api, 7102)
        answer = await person.document(b"\0" * (25 * MB), "anh.jpg", "image/jpeg")
        assert "lớn hơn 20 MB" in answer and "có lỗi" not in answer
    assert api.called("getFile") == [] and api.files_served == 0


async def test_each_chat_shows_the_commands_of_its_role(api: StandinBotAPI, app: App) -> None:
    await bind(app, 7201, Role.ADMIN)
    district = await bind(app, 7202, Role.DISTRICT, district="Huyện Phú Xuyên")
    await bind(app, 7203, Role.INVESTOR, clusters=["dai-thang"])
    gone = await bind(app, 7204, Role.INVESTOR, clusters=["dai-thang"])
    async with unit_of_work(app.sessions) as session:
        await revoke_person(session, gone, actor="test", now=datetime.now(UTC))
    for chat in (7201, 7202, 7203, 7204):
        api.meet(chat)
    async with unit_of_work(app.sessions) as session:
        invitation = await create_invitation(
            session, role=Role.DISTRICT, now=datetime.now(UTC), district="Huyện Phú Xuyên"
        )
    async with running(api, app.deps()):
        # at start-up, every known chat gets its role's menu; a withdrawn person's goes
        assert await menu_of(api, 7201) == ADMIN_MENU
        assert await menu_of(api, 7202) == DISTRICT_MENU
        assert await menu_of(api, 7203) == BASE_MENU
        for _ in range(100):
            if any(c["scope"] == {"type": "chat", "chat_id": 7204} for c in deleted(api)):
                break
            await asyncio.sleep(0.05)
        assert {"type": "chat", "chat_id": 7204} in [c["scope"] for c in deleted(api)]
        assert api.chat_commands(7204) == []
        descriptions = {c["command"]: c["description"] for c in api.chat_commands(7201)}
        assert descriptions["tonghop"] == "Tổng hợp tháng"
        assert descriptions["duyet"] == "Duyệt báo cáo đã nhận"

        # a new person accepts an invitation: their chat gets a district officer's menu
        newcomer = Person(api, 7205)
        assert "Chào mừng" in await newcomer.say(f"/start {invitation.token}")
        assert await menu_of(api, 7205) == DISTRICT_MENU

        # nothing changed, nothing set again; a new language, the menu in that language
        calls = len(api.called("setMyCommands"))
        investor = Person(api, 7203)
        await investor.say("/trogiup")
        assert len(api.called("setMyCommands")) == calls
        await investor.say("/ngonngu")
        await investor.tap("English")
        for _ in range(100):
            if len(api.called("setMyCommands")) > calls:
                break
            await asyncio.sleep(0.05)
        english = {c["command"]: c["description"] for c in api.chat_commands(7203)}
        assert list(english) == BASE_MENU and english["baocao"] == "Send this month's report"
        # strangers get no menu of their own (and cost no call)
        await Person(api, 7299).say("xin chào")
        assert api.chat_commands(7299) == []
        assert len(api.called("setMyCommands")) == calls + 1
        # access withdrawn by another worker: the menu goes at the chat's next command
        assert "/baocao" in await Person(api, 7202).say("/trogiup")
        async with unit_of_work(app.sessions) as session:
            await revoke_person(session, district, actor="test", now=datetime.now(UTC))
        assert "chưa được mời" in await Person(api, 7202).say("/baocao")
        for _ in range(100):
            if api.chat_commands(7202) == []:
                break
            await asyncio.sleep(0.05)
        assert api.chat_commands(7202) == []


def deleted(api: StandinBotAPI) -> list[dict[str, object]]:
    return api.called("deleteMyCommands")


def test_the_bots_name_after_a_command_is_telegrams_own() -> None:
    """Telegram's menu and groups send `/baocao@<bot>`; the adapter reads it as `/baocao`. A
    command naming another bot is left alone (it was not for us)."""
    read = functools.partial(telegram.without_mention, bot_username="ccn_hanoi_bot")
    assert read("/baocao@ccn_hanoi_bot 5/2021") == "/baocao 5/2021"
    assert read("/BaoCao@CCN_Hanoi_Bot") == "/BaoCao"
    assert read("/baocao@other_bot") == "/baocao@other_bot"
    assert read("email@ccn_hanoi_bot") == "email@ccn_hanoi_bot"
    assert telegram.deep_link("ccn_hanoi_bot", "tok") == "https://t.me/ccn_hanoi_bot?start=tok"


def test_workers_of_one_bot_share_the_webhooks_path_and_secret() -> None:
    """Workers behind one load balancer take each other's posts: the path and the secret are
    the same in each, without WEBHOOK_SECRET too; another bot's differ."""
    one, again = (
        telegram.webhook_identity("123:abc", None),
        telegram.webhook_identity("123:abc", ""),
    )
    assert one == again
    path, secret = one
    assert re.fullmatch(r"telegram/[0-9a-f]{16}", path)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret)  # what Telegram takes as secret_token
    assert "123:abc" not in secret
    assert telegram.webhook_identity("456:def", None) != one
    assert telegram.webhook_identity("123:abc", "set-by-admin") == (
        telegram.webhook_identity("999:zzz", "set-by-admin")
    )
