"""Long polling in a rush: when many updates are in flight they are kept in the inbox and
confirmed to Telegram at once (each read once, none holding back the others); a process that
stops before handling them handles them at its next start, each chat's in order, none twice."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot.app import App
from bot.channels import telegram
from bot.lanes import Lanes
from store.models import InboxEvent
from testing.standin_telegram import StandinBotAPI
from tests.test_rush import until

CHATS = [7001, 7002, 7003, 7001, 7002, 7003, 7001, 7002]


async def kept_rows(app: App) -> int:
    async with app.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(InboxEvent).where(InboxEvent.channel == "telegram")
        )
    return int(count or 0)


def bot_on(
    api: StandinBotAPI, handled: list[tuple[int, str]], release: asyncio.Event
) -> Application:  # type: ignore[type-arg]
    application = ApplicationBuilder().token(api.token).base_url(f"{api.root}/bot").build()

    async def handle(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        await release.wait()
        assert update.effective_chat is not None and update.effective_message is not None
        handled.append((update.effective_chat.id, update.effective_message.text or ""))

    application.add_handler(MessageHandler(filters.ALL, handle))
    return application


async def polling(application: Application, app: App) -> asyncio.Task[None]:  # type: ignore[type-arg]
    def lane(update: Update) -> int:
        assert update.effective_chat is not None
        return update.effective_chat.id

    notifier = telegram.TelegramNotifier(application)
    return asyncio.create_task(
        telegram.poll(application, notifier, Lanes(), lane, None, app.sessions)
    )


async def stop(poller: asyncio.Task[None]) -> None:
    poller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poller


async def test_a_rush_is_kept_confirmed_at_once_and_handled_after_a_stop(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram, "KEEP_AT", 3)
    monkeypatch.setattr(telegram, "STOP_GRACE", 0.1)
    api = StandinBotAPI(token="424242:KEEP")
    await api.start()
    try:
        # the first process takes the rush and stops before handling any of it
        handled: list[tuple[int, str]] = []
        stuck = asyncio.Event()
        first = bot_on(api, handled, stuck)
        async with first:
            poller = await polling(first, app)
            sent = [api.send_text(chat, f"{chat}/{n}") for n, chat in enumerate(CHATS)]
            # confirmed to Telegram though not handled: kept in the inbox instead
            await until(lambda: all(update in api.confirmed_at for update in sent))
            assert handled == []
            assert await kept_rows(app) == len(CHATS)
            await stop(poller)
        assert handled == []  # cut short: Telegram has forgotten them, the inbox has not
        assert await kept_rows(app) == len(CHATS)

        # the next process handles them first, each chat's in the order sent, once
        handled = []
        free = asyncio.Event()
        free.set()
        second = bot_on(api, handled, free)
        async with second:
            poller = await polling(second, app)
            later = api.send_text(7001, "7001/late")
            await until(lambda: len(handled) == len(CHATS) + 1)
            await until(lambda: later in api.confirmed_at)
            await stop(poller)  # the rows of what was handled are cleared, at the latest now
        for chat in set(CHATS):
            mine = [text for who, text in handled if who == chat]
            expected = [f"{chat}/{n}" for n, c in enumerate(CHATS) if c == chat]
            assert mine == expected + (["7001/late"] if chat == 7001 else [])
        assert await kept_rows(app) == 0
    finally:
        await api.stop()


async def test_a_few_updates_are_confirmed_only_once_handled(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under KEEP_AT in flight nothing is written: Telegram keeps the update until handled."""
    monkeypatch.setattr(telegram, "STOP_GRACE", 0.1)
    api = StandinBotAPI(token="424242:FEW")
    await api.start()
    try:
        handled: list[tuple[int, str]] = []
        release = asyncio.Event()
        application = bot_on(api, handled, release)
        async with application:
            poller = await polling(application, app)
            sent = [api.send_text(chat, f"{chat}/{n}") for n, chat in enumerate(CHATS[:3])]
            await until(lambda: len(api.called("getUpdates")) > 5)
            assert not any(update in api.confirmed_at for update in sent)
            assert await kept_rows(app) == 0
            release.set()
            await until(lambda: all(update in api.confirmed_at for update in sent))
            await stop(poller)
        assert len(handled) == 3
    finally:
        await api.stop()
