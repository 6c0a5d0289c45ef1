"""The same bot on a Zalo Official Account: the dialogs through the Zalo adapter, signatures,
tokens, reminders within and outside Zalo's window, and one person on two messengers."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.app import App, Notifiers
from bot.channels.zalo import ZaloNotifier
from handlers.context import Deps
from reminders.policy import Policy
from reminders.sender import tick
from store.access import create_invitation
from store.db import unit_of_work
from store.models import (
    ChannelIdentity,
    Conversation,
    Person,
    Photo,
    ProcessedUpdate,
    Report,
    ReportPhoto,
    Role,
    ZaloToken,
)
from tests.dialog import IMAGES, Chat, Clock, play
from tests.test_dialogs import FOUNDED_JUNE
from tests.test_reminders import Outbox
from tests.zalo_dialog import ZaloChat, zalo_bot

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
JUNE_10 = datetime(2021, 6, 10, 9, 0, tzinfo=HANOI)


async def token_for(deps: Deps, role: Role = Role.INVESTOR, **scope: object) -> str:
    scope = scope or {"clusters": ["dai-thang"]}
    async with unit_of_work(deps.sessions) as session:
        invitation = await create_invitation(session, role=role, now=deps.clock(), **scope)  # type: ignore[arg-type]
        return invitation.token


@pytest.fixture
async def zalo_chat(deps: Deps) -> AsyncIterator[ZaloChat]:
    async with zalo_bot(deps) as (zalo, channel, url, http):
        yield ZaloChat(
            deps, chat_id="zalo-user-1", zalo=zalo, webhook=url, http=http, channel_obj=channel
        )


async def test_founded_report_over_zalo(zalo_chat: ZaloChat, deps: Deps, app: App) -> None:
    chat = zalo_chat
    welcome = await chat.say(await token_for(deps))  # Zalo has no deep links: the token as text
    assert "Chào mừng" in welcome and "Đại Thắng" in welcome
    await play(chat, FOUNDED_JUNE)
    async with app.sessions() as session:
        report = await session.scalar(select(Report))
        assert report is not None and report.channel == "zalo" and report.on_time
        shas = set(
            (
                await session.scalars(
                    select(Photo.sha256).join(ReportPhoto).where(ReportPhoto.report_id == report.id)
                )
            ).all()
        )
    assert shas == {hashlib.sha256(IMAGES[n][0]).hexdigest() for n in ("red.jpg", "green.png")}
    # the summary had 12 edit buttons and "Gửi báo cáo": Zalo takes at most five a message
    assert all(len(s.buttons) <= 5 for s in chat.zalo.sent)


async def test_signatures_guard_the_webhook(zalo_chat: ZaloChat, app: App, deps: Deps) -> None:
    chat = zalo_chat
    event = chat.zalo.event("user_send_text", "intruder", text="xin chào")
    event["timestamp"] = str(int(deps.clock().timestamp() * 1000))
    assert chat.http is not None
    async with chat.http.post(chat.webhook, data=chat.zalo.encode(event)) as r:
        assert r.status == 401  # unsigned
    assert await chat.post(event, secret="not-the-secret") == 401
    stale = dict(
        event, timestamp=str(int((deps.clock() - timedelta(minutes=10)).timestamp() * 1000))
    )
    assert await chat.post(stale) == 401
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 0
    assert chat.zalo.sent == []
    assert await chat.post(event) == 200  # signed and fresh: answered
    assert await chat.post(event) == 200  # the same message again: handled once
    assert len(chat.zalo.to("intruder")) == 1 and "intruder" in chat.zalo.to("intruder")[0].text


async def test_expired_token_is_refreshed_and_rotated(
    zalo_chat: ZaloChat, deps: Deps, app: App
) -> None:
    chat = zalo_chat
    await chat.say(await token_for(deps))
    for round_ in (1, 2):
        chat.zalo.expire_token()
        answer = await chat.say("/trogiup")
        assert "/baocao" in answer  # the message went out after one refresh
        assert chat.zalo.refreshes == round_
        async with app.sessions() as session:
            saved = await session.scalar(select(ZaloToken))
        assert saved is not None and saved.refresh_token == chat.zalo.refresh_token  # rotated


async def test_other_events(zalo_chat: ZaloChat, app: App, deps: Deps) -> None:
    chat = zalo_chat
    now_ms = str(int(deps.clock().timestamp() * 1000))
    follow = chat.zalo.event("follow", "newcomer")
    follow["timestamp"] = now_ms
    assert await chat.post(follow) == 200
    assert "newcomer" in chat.zalo.to("newcomer")[0].text  # greeted with its chat id to pass on
    sticker = chat.zalo.event("user_send_sticker", "newcomer", attachments=[{"type": "sticker"}])
    sticker["timestamp"] = now_ms
    await chat.post(sticker)
    assert "chưa đọc được loại tin nhắn này" in chat.zalo.to("newcomer")[-1].text
    await chat.say(await token_for(deps))
    unfollow = chat.zalo.event("unfollow", chat.chat_id)
    unfollow["timestamp"] = now_ms
    await chat.post(unfollow)
    async with app.sessions() as session:
        identity = await session.scalar(
            select(ChannelIdentity).where(ChannelIdentity.external_id == chat.chat_id)
        )
    assert identity is not None and not identity.reachable


async def test_one_person_on_two_messengers(
    zalo_chat: ZaloChat, deps: Deps, app: App, clock: Clock
) -> None:
    telegram = Chat(deps, chat_id="555", channel="telegram")
    await telegram.say(f"/start {await token_for(deps)}")
    await play(telegram, [("/baocao", "QHCT"), ("[Có]", "Phương án bồi thường")])
    code = (await telegram.say("/lienket")).rsplit(" ", 1)[1].strip()
    assert code.isdigit() and len(code) == 8
    zalo = zalo_chat
    assert "Đã liên kết" in await zalo.say(code)
    await play(zalo, [("/baocao", "Tiếp tục bản nháp | Phương án bồi thường")])  # the same draft
    async with app.sessions() as session:
        people = await session.scalar(select(func.count()).select_from(Person))
    assert people == 1
    # a code works once
    assert "chưa được mời" in await Chat(deps, chat_id="556", channel="telegram").say(code)
    # reminders go to the messenger used last: Zalo, where the person wrote yesterday
    clock.now = datetime(2021, 6, 19, 9, 0, tzinfo=HANOI)
    await zalo.say("/huy")
    telegram_box = Outbox()
    both = Notifiers([telegram_box, ZaloNotifier(zalo.channel_obj.api)])  # type: ignore[union-attr]
    clock.now = datetime(2021, 6, 20, 8, 0, tzinfo=HANOI)
    result = await tick(deps.sessions, deps.calendar, Policy(), both, clock.now)
    assert result.sent == 1 and telegram_box.sent == []
    assert "Nhắc báo cáo tháng 06/2021" in zalo.zalo.to(zalo.chat_id)[-1].text


async def test_reminder_outside_the_window(deps: Deps, app: App, clock: Clock) -> None:
    async with zalo_bot(deps, window=timedelta(hours=48), zns_template_id="tmpl-7") as (
        zalo,
        channel,
        url,
        http,
    ):
        with_phone = ZaloChat(
            deps, chat_id="zp", zalo=zalo, webhook=url, http=http, channel_obj=channel
        )
        without = ZaloChat(
            deps, chat_id="zn", zalo=zalo, webhook=url, http=http, channel_obj=channel
        )
        await with_phone.say(await token_for(deps, clusters=["phu-tuc"]))
        await without.say(await token_for(deps, clusters=["dai-thang"]))
        async with unit_of_work(deps.sessions) as session:
            person = await session.scalar(
                select(Person).join(ChannelIdentity).where(ChannelIdentity.external_id == "zp")
            )
            assert person is not None
            person.phone = "84912345678"
        clock.now = datetime(2021, 6, 20, 8, 0, tzinfo=HANOI)  # ten days after their last message
        result = await tick(
            deps.sessions, deps.calendar, Policy(), ZaloNotifier(channel.api), clock.now
        )
        assert (result.sent, result.unreachable) == (1, 1)
        assert [z["phone"] for z in zalo.zns] == ["84912345678"]
        assert zalo.zns[0]["template_id"] == "tmpl-7"
        assert not [s for s in zalo.sent if s.user_id in ("zp", "zn") and "Nhắc" in s.text]
        clock.now = datetime(2021, 6, 25, 8, 0, tzinfo=HANOI)
        admin = Chat(deps, chat_id="admin-1", channel="telegram")
        await admin.say(f"/start {await token_for(deps, Role.ADMIN, clusters=[])}")

    # the admins' digest names whoever could not be reached on Zalo
    box = Outbox(channels=frozenset({"telegram"}))
    await tick(
        deps.sessions, deps.calendar, Policy(), box, datetime(2021, 6, 25, 8, 0, tzinfo=HANOI)
    )
    [digest] = box.to("admin-1")
    assert "Không liên lạc được" in digest
