"""Start-up and shut-down: settings → engine → migrations → registry."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.settings import Settings
from handlers.context import Config, Deps
from handlers.port import Reply
from reminders.sender import Delivery, Notifier
from store.db import make_engine, make_sessionmaker, unit_of_work, upgrade
from store.seed import SeedCounts, load_registry, registry_loaded


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    def deps(self, bot_username: str = "") -> Deps:
        s = self.settings
        config = Config(
            calendar=s.calendar(),
            data_dir=s.data_dir,
            default_locale=s.default_locale,
            bot_username=bot_username or s.telegram_bot_username,
            max_photos=s.max_photos,
            max_photo_bytes=s.max_photo_mb * 1024 * 1024,
            invite_days=s.invite_days,
        )
        return Deps(self.sessions, config)


@asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[App]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        yield App(settings, engine, make_sessionmaker(engine))
    finally:
        await engine.dispose()


async def prepare(app: App) -> SeedCounts | None:
    """Migrate to the newest schema; load the plan's registry into an empty database."""
    await upgrade(app.engine)
    async with unit_of_work(app.sessions) as session:
        if await registry_loaded(session):
            return None
        return await load_registry(session)


class Notifiers:
    """Several channels behind one notifier: each message goes through its own channel's."""

    def __init__(self, notifiers: list[Notifier]) -> None:
        self.by_channel = {c: n for n in notifiers for c in n.channels}
        self.channels = frozenset(self.by_channel)

    async def send(self, channel: str, chat_id: str, reply: Reply) -> Delivery:
        return await self.by_channel[channel].send(channel, chat_id, reply)


async def serve(app: App, stop: asyncio.Event | None = None) -> None:
    """Run every configured channel (Telegram, Zalo) and the reminder job until SIGINT or
    SIGTERM (or `stop`)."""
    from bot.channels import telegram, zalo
    from reminders import scheduler

    settings = app.settings
    deps = app.deps()
    gc.freeze()  # what start-up loaded lives as long as the bot: keep it out of every collection
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    notifiers: list[Notifier] = []
    async with contextlib.AsyncExitStack() as stack:
        if settings.telegram_bot_token is not None:
            notifiers.append(
                await stack.enter_async_context(
                    telegram.running(
                        deps,
                        token=settings.telegram_bot_token.get_secret_value(),
                        base_url=settings.telegram_base_url(),
                        file_url=settings.telegram_file_url(),
                        webhook_url=settings.webhook_url,
                        webhook_secret=(
                            settings.webhook_secret.get_secret_value()
                            if settings.webhook_secret
                            else None
                        ),
                        listen=settings.webhook_listen,
                        port=settings.webhook_port,
                    )
                )
            )
        if settings.zalo_enabled:
            channel = await stack.enter_async_context(
                zalo.serving(
                    deps,
                    zalo.config_from(settings),
                    settings.zalo_webhook_listen,
                    settings.zalo_webhook_port,
                )
            )
            notifiers.append(zalo.ZaloNotifier(channel.api))
        jobs = scheduler.start(
            deps.sessions,
            deps.calendar,
            settings.policy(),
            Notifiers(notifiers),
            every_seconds=settings.reminder_tick_seconds,
            clock=deps.clock,
        )
        stack.callback(jobs.shutdown, wait=False)
        await stop.wait()
