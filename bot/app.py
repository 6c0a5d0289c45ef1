"""Start-up and shut-down: settings → engine → migrations → registry."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.settings import Settings
from bot.web import FileLinks, secret_from
from handlers.context import Config, Deps
from handlers.port import Reply
from reminders.sender import Delivery, Notifier
from reports.files import exports_root
from store import i18n
from store.contacts import admin_chats
from store.db import make_engine, make_sessionmaker, unit_of_work, upgrade
from store.leader import Leadership
from store.seed import SeedCounts, load_registry, registry_loaded

log = logging.getLogger(__name__)


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
        if s.clock_start is None:
            return Deps(self.sessions, config)
        offset = s.clock_start - datetime.now(UTC)
        return Deps(self.sessions, config, lambda: datetime.now(UTC) + offset)


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


def file_links(settings: Settings, deps: Deps) -> FileLinks | None:
    """Signed download links, when the bot has a public address (PUBLIC_URL)."""
    if not settings.public_url or settings.link_secret is None:
        return None
    return FileLinks(
        secret_from(settings.link_secret.get_secret_value()),
        settings.public_url,
        exports_root(deps.config.data_dir),
        deps.clock,
    )


def alert_admins(
    deps: Deps, notifiers: list[Notifier], channel: str
) -> Callable[[str], Awaitable[None]]:
    """Tell every admin, on every messenger they have, that a channel lost its token."""

    async def alert(problem: str) -> None:
        async with deps.sessions() as session:
            chats = await admin_chats(session)
        send = Notifiers(notifiers)
        for to_channel, chat_id, locale in chats:
            if to_channel not in send.channels:
                continue
            _ = i18n.gettext_for(locale)
            text = _(
                "The bot cannot renew its {channel} access token, so it cannot send messages "
                "there ({problem}). Please authorise the Official Account again and set its "
                "new refresh token."
            ).format(channel=channel.capitalize(), problem=problem[:200])
            try:
                await send.send(to_channel, chat_id, Reply(text))
            except Exception:
                log.exception("could not alert admin chat %s:%s", to_channel, chat_id)

    return alert


class Notifiers:
    """Several channels behind one notifier: each message goes through its own channel's."""

    def __init__(self, notifiers: list[Notifier]) -> None:
        self.by_channel = {c: n for n in notifiers for c in n.channels}
        self.channels = frozenset(self.by_channel)
        self.typed_channels: frozenset[str] = frozenset().union(
            *(getattr(n, "typed_channels", frozenset()) for n in notifiers)
        )

    async def send(self, channel: str, chat_id: str, reply: Reply) -> Delivery:
        return await self.by_channel[channel].send(channel, chat_id, reply)


async def serve(app: App, stop: asyncio.Event | None = None) -> None:
    """Run every configured channel (Telegram, Zalo) and the reminder job until SIGINT or
    SIGTERM (or `stop`)."""
    from bot import web
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
        links = file_links(settings, deps)
        checks = {"database": web.database_check(deps.sessions)}
        if settings.zalo_enabled:
            channel = await stack.enter_async_context(
                zalo.serving(
                    deps,
                    zalo.config_from(settings),
                    settings.zalo_webhook_listen,
                    settings.zalo_webhook_port,
                    links=links,
                    checks=checks,
                )
            )
            notifiers.append(zalo.ZaloNotifier(channel.api))
            channel.api.on_token_failure = alert_admins(deps, notifiers, "zalo")
        elif settings.web_port is not None:
            await stack.enter_async_context(
                web.serving(settings.web_listen, settings.web_port, links, deps, checks)
            )
        leadership = Leadership(app.engine)
        stack.push_async_callback(leadership.release)
        jobs = scheduler.start(
            deps.sessions,
            deps.calendar,
            settings.policy(),
            Notifiers(notifiers),
            every_seconds=settings.reminder_tick_seconds,
            clock=deps.clock,
            leadership=leadership,
        )
        stack.callback(jobs.shutdown, wait=False)
        await stop.wait()
