"""The same bot on a Zalo Official Account: the dialogs through the Zalo adapter, signatures,
tokens, reminders within and outside Zalo's window, and one person on two messengers."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy import func, select

from bot.app import App, Notifiers, alert_admins
from bot.channels.zalo import IMAGE_MAX_BYTES, ZaloNotifier, ZaloUnavailable
from bot.web import database_check, health_routes
from domain.roles import Role
from handlers import conversation
from handlers.context import Deps
from reminders.policy import Policy
from reminders.sender import tick
from store.access import create_invitation
from store.db import unit_of_work
from store.models import (
    ChannelIdentity,
    Conversation,
    InboxEvent,
    Person,
    Photo,
    ProcessedUpdate,
    Report,
    ReportPhoto,
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
    stale = dict(event, timestamp=str(int((deps.clock() - timedelta(hours=3)).timestamp() * 1000)))
    assert await chat.post(stale) == 401  # older than Zalo's last retry (1 h after 50 min)
    other_app = dict(event, app_id="999")
    assert await chat.post(other_app) == 401  # signed with our key, but not for our app
    not_a_time = dict(event, timestamp="yesterday")
    assert await chat.post(not_a_time) == 401  # row 17: was a 500
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 0
    assert chat.zalo.sent == []
    assert await chat.post(event) == 200  # signed and fresh: answered
    assert await chat.post(event) == 200  # the same message again: handled once
    greeting, form = chat.zalo.to("intruder")
    assert "intruder" in greeting.text  # their chat number, to pass on to Sở Công Thương
    assert form.kind == "request_user_info"  # and Zalo's form asking for their phone
    # Zalo redelivers an event it could not deliver, up to 1 h 50 min later: still answered
    retry = chat.zalo.event("user_send_text", "intruder", text="/trogiup")
    retry["timestamp"] = str(int((deps.clock() - timedelta(minutes=50)).timestamp() * 1000))
    body = chat.zalo.encode(retry)
    headers = chat.zalo.sign(body, retry, num_retry=4, mac_prefix=False)
    async with chat.http.post(chat.webhook, data=body, headers=headers) as r:
        assert r.status == 200
    await chat.channel_obj.drain()  # type: ignore[union-attr]
    assert len(chat.zalo.to("intruder")) == 3


async def test_an_event_acknowledged_before_a_crash_is_handled_after_it(
    deps: Deps, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zalo gets its 200 at once and sends the event no more: the bot keeps it in the database
    first, so a process that dies before handling it loses nothing — the next one answers."""
    token = await token_for(deps)
    stuck = asyncio.Event()

    async def dies_before_answering(*_: object) -> list[object]:
        await stuck.wait()
        return []

    async with zalo_bot(deps) as (zalo, channel, url, http):
        monkeypatch.setattr(conversation, "handle", dies_before_answering)
        event = zalo.event("user_send_text", "zalo-user-9", text=token)
        event["timestamp"] = str(int(deps.clock().timestamp() * 1000))
        body = zalo.encode(event)
        async with http.post(url, data=body, headers=zalo.sign(body, event)) as r:
            assert r.status == 200
        for task in list(channel._tasks):  # the process is killed
            task.cancel()
        await asyncio.gather(*channel._tasks, return_exceptions=True)
        assert zalo.to("zalo-user-9") == []
        monkeypatch.undo()
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxEvent)) == 1
    async with zalo_bot(deps, zalo=zalo) as (zalo, channel, url, http):  # restarted
        for _ in range(200):
            await channel.drain()
            if zalo.to("zalo-user-9"):
                break
            await asyncio.sleep(0.02)
        await channel.drain()
        assert "Chào mừng" in zalo.to("zalo-user-9")[0].text  # the invitation was accepted
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxEvent)) == 0


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
    """Inside Zalo's 7 days: a consultation message with typed choices; outside with a phone
    (given through Zalo's form): a ZNS template with valid parameters; outside without one:
    unreachable, and listed for the admins."""
    async with zalo_bot(deps, zns_template_id="ccn-reminder") as (zalo, channel, url, http):

        def chat(user: str) -> ZaloChat:
            return ZaloChat(
                deps, chat_id=user, zalo=zalo, webhook=url, http=http, channel_obj=channel
            )

        recent, with_phone, without = chat("zr"), chat("zp"), chat("zn")
        welcome = await with_phone.say(await token_for(deps, clusters=["phu-tuc"]))
        assert "Chào mừng" in welcome
        form = zalo.to("zp")[-1]
        assert form.kind == "request_user_info"  # asked for the phone right after joining
        # the person fills Zalo's form: the phone arrives as user_submit_info
        submitted = zalo.submit_info("zp", name="Trần Thị Bình", phone="84912345678")
        assert await with_phone.post(submitted) == 200
        assert "đã lưu số điện thoại" in zalo.to("zp")[-1].text
        await without.say(await token_for(deps, clusters=["dai-thang"]))
        clock.now = datetime(2021, 6, 18, 9, 0, tzinfo=HANOI)
        await recent.say(await token_for(deps, clusters=["phu-yen"]))
        await play(recent, [("/baocao", "QHCT"), ("/huy", "tạm dừng")])
        clock.now = datetime(2021, 6, 20, 8, 0, tzinfo=HANOI)  # ten days after the first two
        result = await tick(
            deps.sessions, deps.calendar, Policy(), ZaloNotifier(channel.api), clock.now
        )
        assert (result.sent, result.unreachable, result.failed) == (2, 1, 0)
        # inside the window: the reminder itself, its choices to type (letters)
        reminder = zalo.to("zr")[-1].text
        assert "Nhắc báo cáo tháng 06/2021" in reminder
        assert "[a] Báo cáo:" in reminder and "[b] Đã gửi bằng văn bản" in reminder
        assert "Đã nhận báo cáo" not in await recent.say("a")  # typing the key opens it
        assert "Tiếp tục bản nháp" in recent.text
        # outside with a phone: ZNS, each parameter within its type's limit
        [zns] = zalo.zns
        assert zns["phone"] == "84912345678" and zns["template_id"] == "ccn-reminder"
        assert zns["template_data"] == {
            "customer_name": "Trần Thị Bình",
            "cluster": "Cụm công nghiệp làng nghề Phú Túc",
            "period": "06/2021",
            "deadline": "25/06/2021",
        }
        assert not [s for s in zalo.sent if s.user_id in ("zp", "zn") and "Nhắc" in s.text]
        assert zalo.refused == []
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


async def test_a_failed_token_refresh_alerts_the_admins_and_health(
    zalo_chat: ZaloChat, deps: Deps, app: App
) -> None:
    """Zalo refuses the refresh token: every admin hears it on every messenger they have, and
    /healthz answers 503 until a refresh works again."""
    chat = zalo_chat
    admin = Chat(deps, chat_id="admin-9", channel="telegram")
    await admin.say(f"/start {await token_for(deps, Role.ADMIN, clusters=[])}")
    await chat.say(await token_for(deps))
    api = chat.channel_obj.api  # type: ignore[union-attr]
    box = Outbox()
    api.on_token_failure = alert_admins(deps, [box], "zalo")
    server = web.Application()
    health_routes(server, {"database": database_check(deps.sessions), "zalo": api.health})
    async with TestClient(TestServer(server)) as client:
        assert (await client.get("/healthz")).status == 200
        chat.zalo.oauth_refuses = True
        chat.zalo.expire_token()
        await chat.say("/trogiup")  # cannot be answered: the token is dead
        [alert] = box.to("admin-9")
        assert "không gia hạn được mã truy cập Zalo" in alert
        response = await client.get("/healthz")
        body = await response.json()
        assert response.status == 503 and body["checks"]["zalo"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
        await chat.say("/trogiup")
        assert len(box.to("admin-9")) == 1  # told once, not at every message
        chat.zalo.oauth_refuses = False
        assert "/baocao" in await chat.say("/trogiup")  # the next refresh works
        assert (await client.get("/healthz")).status == 200


async def test_zalo_in_trouble_is_retried(zalo_chat: ZaloChat, deps: Deps) -> None:
    chat = zalo_chat
    chat.zalo.outage = 2  # two 503s, then Zalo answers again
    assert "chưa được mời" in await chat.say("xin chào")
    assert chat.zalo.outages_seen == 2
    api = chat.channel_obj.api  # type: ignore[union-attr]
    chat.zalo.outage = 10  # longer than the retries: the caller is told
    with pytest.raises(ZaloUnavailable):
        await api.text(chat.chat_id, "xin chào")


async def test_images_are_fitted_to_zalos_cap(zalo_chat: ZaloChat, deps: Deps) -> None:
    """A photo or chart over Zalo's 1 MB image cap is re-encoded as JPEG and accepted; an
    XLSX that Zalo's file upload refuses becomes one line, not a silent failure."""
    chat = zalo_chat
    await chat.say(await token_for(deps))
    noise = Image.effect_noise((1800, 1800), 90).convert("RGB")
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    assert len(buffer.getvalue()) > IMAGE_MAX_BYTES
    api = chat.channel_obj.api  # type: ignore[union-attr]
    await api.image(chat.chat_id, buffer.getvalue(), "Biểu đồ")
    [upload] = [u for u in chat.zalo.upload_info.values() if u.kind == "image"]
    assert len(upload.data) <= IMAGE_MAX_BYTES and upload.sniffed == "image/jpeg"
    assert upload.content_type == "image/jpeg"  # labelled as what it is
    book = deps.config.data_dir / "exports" / "book.xlsx"
    book.parent.mkdir(parents=True, exist_ok=True)
    book.write_bytes(b"PK\x03\x04 not really a workbook")
    await api.file(chat.chat_id, book, "vi")  # no PUBLIC_URL here: no link to offer
    assert "Zalo không gửi được tệp book.xlsx" in chat.zalo.to(chat.chat_id)[-1].text
    assert not [u for u in chat.zalo.upload_info.values() if u.kind == "file"]


async def test_photos_arriving_together_are_all_kept(
    zalo_chat: ZaloChat, deps: Deps, app: App
) -> None:
    """Trust row 7: five photos sent at once before /baocao were one kept, four dropped; a chat's
    events are now handled one at a time, in order."""
    chat = zalo_chat
    await chat.say(await token_for(deps))
    assert chat.http is not None and chat.channel_obj is not None
    events = []
    for index in range(5):
        url = chat.zalo.publish(f"p{index}.jpg", image_bytes(index))
        events.append(
            chat.zalo.event(
                "user_send_image",
                chat.chat_id,
                attachments=[{"type": "image", "payload": {"url": url, "thumbnail": url}}],
            )
        )

    async def post(event: dict[str, object]) -> int:
        body = chat.zalo.encode(event)
        async with chat.http.post(  # type: ignore[union-attr]
            chat.webhook, data=body, headers=chat.zalo.sign(body, event)
        ) as response:
            return response.status

    assert await asyncio.gather(*(post(e) for e in events)) == [200] * 5
    await chat.channel_obj.drain()
    assert "Đã thêm 5 ảnh" in await chat.say("/baocao")


def image_bytes(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (index * 40, 80, 120)).save(buffer, "JPEG")
    return buffer.getvalue()
