"""Many people at once, through the real bot and the stand-in Bot API: nobody waits for
someone else's slow download, a person's own messages keep their order, and replies do not
queue behind a reminder broadcast."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from telegram.ext import ExtBot

from bot.channels.pacing import Pacing, bulk
from testing.standin_telegram import StandinBotAPI
from tests import inprocess
from tests.dialog import image
from tests.test_telegram_e2e import Person, start_here, stop_bot


@pytest.fixture
async def api() -> AsyncIterator[StandinBotAPI]:
    server = StandinBotAPI(token="424242:RUSH", bot_username="ccn_hanoi_bot")
    await server.start()
    yield server
    await server.stop()


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


async def invite(tmp_path: Path, url: str) -> str:
    env: dict[str, str | None] = {"DATABASE_URL": url, "TELEGRAM_BOT_TOKEN": None}
    env["DATA_DIR"] = str(tmp_path / "data")
    args = ("invite", "--role", "investor", "--cluster", "dai-thang")
    done = await asyncio.to_thread(inprocess.ccn, tmp_path, env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[0]


def texts(api: StandinBotAPI, chat_id: int) -> list[str]:
    return [str(m.get("text") or m.get("caption") or "") for m in api.sent(chat_id)]


async def test_a_slow_download_holds_up_no_one_else(
    api: StandinBotAPI, tmp_path: Path, prepared_url: str
) -> None:
    token = await invite(tmp_path, prepared_url)
    bot = start_here(tmp_path, api, DATABASE_URL=prepared_url)
    investor, stranger = Person(api, 5551234), Person(api, 5559876)
    held = asyncio.Event()
    try:
        assert "Chào mừng" in await investor.say(f"/start {token}")
        assert "QHCT 1/500" in await investor.say("/baocao")
        before = len(api.sent(investor.chat_id))
        api.hold_files = held  # the investor's photo travels over a slow network
        api.send_photo(investor.chat_id, image("red", (320, 240)))
        await until(lambda: api.files_asked == 1)
        api.send_text(investor.chat_id, "/trogiup")  # sent while the photo is still coming
        api.send_text(stranger.chat_id, "xin chào")
        # the stranger is answered while the investor's photo is still downloading
        await api.wait_for_count(stranger.chat_id, 1)
        assert "5559876" in texts(api, stranger.chat_id)[0]
        assert len(api.sent(investor.chat_id)) == before
        held.set()
        # the investor's two answers, in the order of their messages
        await api.wait_for_count(investor.chat_id, before + 2)
        photo, help_ = texts(api, investor.chat_id)[before : before + 2]
        assert "Đã nhận" in photo and "ảnh" in photo, photo
        assert "/baocao" in help_, help_
    finally:
        held.set()
        await stop_bot(bot)


async def test_a_reply_does_not_wait_behind_a_broadcast() -> None:
    """60 reminders go out at the bulk pace from a Bot API that keeps Telegram's 30-a-second
    limit; a reply asked for meanwhile goes out ahead of them (and if it tips the second over
    30, the one refusal is waited out: everything arrives)."""
    api = StandinBotAPI(token="424242:PACE", enforce_limits=True)
    await api.start()
    bot = ExtBot(
        api.token,
        base_url=f"{api.root}/bot",
        base_file_url=f"{api.root}/file/bot",
        rate_limiter=Pacing(),
    )
    people = range(7001, 7061)
    for chat in [*people, 7000]:
        api.meet(chat)

    async def notice(chat: int) -> None:
        with bulk():
            await bot.send_message(chat, "Nhắc: báo cáo tháng")

    def noticed() -> int:
        return sum(len(api.sent(chat)) for chat in people)

    try:
        async with bot:
            broadcast = [asyncio.create_task(notice(chat)) for chat in people]
            await until(lambda: noticed() >= 3)
            await bot.send_message(7000, "Đã lưu.")  # a reply to someone chatting now
            assert noticed() < 30  # it went ahead of half the queue at least
            await asyncio.gather(*broadcast)
        assert noticed() == 60 and len(api.sent(7000)) == 1
        assert api.too_many_requests <= 1
    finally:
        await api.stop()


async def test_a_reminder_is_claimed_only_once_its_chat_may_get_it() -> None:
    """Someone answering questions has used their chat's burst: a reminder to them waits for
    the chat's pace *before* the block where the sender claims its ledger row (killed while it
    waits, the reminder is not lost), and its message does not wait a second time."""
    api = StandinBotAPI(token="424242:PAID")
    await api.start()
    pacing = Pacing()
    bot = ExtBot(api.token, base_url=f"{api.root}/bot", rate_limiter=pacing)
    api.meet(7100)
    entered = asyncio.Event()

    async def reminder() -> None:
        async with pacing.bulk_turn("7100"):
            entered.set()  # here the sender claims its row
            with bulk():
                await bot.send_message(7100, "Nhắc: báo cáo tháng")

    try:
        async with bot:
            for n in range(4):  # the person's burst: four replies at once
                await bot.send_message(7100, f"Câu hỏi {n}")
            sending = asyncio.create_task(reminder())
            await asyncio.sleep(0.3)
            assert not entered.is_set()  # still waiting for the chat: nothing claimed yet
            await until(entered.is_set)
            await sending
        assert len(api.sent(7100)) == 5
        assert pacing._chat("7100").tokens < 1  # one message, one token: not waited for twice
    finally:
        await api.stop()
